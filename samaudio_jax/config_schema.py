"""The complete default ConfigDict; every experiment file under configs/ starts from it.

Sections: model (the flow network), codec, text, vision, data, train, sample, mesh.
Field names in `model` follow the release's config.json where the release has one.

Derived fields follow the field they depend on (ml_collections FieldReferences, see
`link_derived_fields`): model.latent_dim = codec.latent_dim, model.out_channels =
2 * model.latent_dim, model.in_channels = 3 * model.out_channels, vision.output_dim =
model.video_dim. Set the source (`--config.codec.latent_dim=16`) and they follow; a derived
field set on its own to a value that disagrees is refused by config_checks.validate_config,
naming both fields.
"""

from __future__ import annotations

import ml_collections


def model_defaults() -> ml_collections.ConfigDict:
    """The flow network (DiT + the release's wrapper). Defaults are the release's large model."""
    m = ml_collections.ConfigDict()
    m.dim = 2816
    m.num_layers = 22
    m.num_heads = 22
    # In default_config() these three follow codec.latent_dim (link_derived_fields).
    m.latent_dim = 128  # one stream of codec latents; the flow state is 2 * latent_dim
    m.out_channels = 256  # 2 * latent_dim for the release's linear head
    m.in_channels = 768  # 3 * out_channels: [x_t | zeros | mixture features]
    m.text_dim = 768  # T5-base last_hidden_state width (context for memory_proj)
    m.video_dim = 1024  # PE-Core embedding width
    m.num_anchors = 3  # "+", "-", <pad> besides <null>
    m.anchor_embedding_dim = 128
    m.max_positions = 10000
    m.frequency_embedding_dim = 256
    m.ffn_exp = 4
    m.multiple_of = 64
    m.norm_eps = 1e-5
    m.dropout = 0.1
    m.qk_norm = True
    m.fc_bias = False
    m.t_block_bias = True
    m.context_norm = False  # RMSNorm before the y_embedder projection
    # Departures from the release (defaults keep the release's behaviour).
    m.prediction = "velocity"  # "velocity" (release) | "clean" (predict x1)
    m.head = "linear"  # "linear" (release) | "gated_mix" (sigmoid mask on the mixture + residual)
    m.text_to_adaln = False  # add pooled text memory to the t embedding that drives adaLN
    m.mixture_magnitude = False  # also feed log|mixture| per latent channel to the input projection
    m.padding_aware_groupnorm = False  # x_embedder GroupNorm statistics over valid frames only
    # Numerics and compilation.
    m.dtype = "float32"  # compute dtype
    m.param_dtype = "float32"
    m.scan_layers = False
    m.remat_policy = "none"  # none | full | dots | dots_no_batch
    m.attention_impl = "xla"  # xla | cudnn (jax.nn.dot_product_attention implementation)
    # LoRA adapters on the DiT blocks' projections (model/lora.py). rank 0 = off. When on,
    # the base weights are frozen (train/freeze.py): only adapters train, plus norms and
    # biases with train_norms, plus whatever train.trainable names. Export merges them.
    m.lora = ml_collections.ConfigDict()
    m.lora.rank = 0
    m.lora.alpha = 16.0  # the update is (alpha / rank) * x A B
    # Which projections get adapters, in every block's self-attention (attention.*),
    # cross-attention (cross_attention.*) and SwiGLU feed-forward (feed_forward.*).
    m.lora.targets = (
        "attention.wq",
        "attention.wk",
        "attention.wv",
        "attention.wo",
        "cross_attention.wq",
        "cross_attention.wk",
        "cross_attention.wv",
        "cross_attention.wo",
        "feed_forward.w1",
        "feed_forward.w2",
        "feed_forward.w3",
    )
    m.lora.train_norms = False  # also train norm weights and biases
    return m


def codec_defaults() -> ml_collections.ConfigDict:
    """The audio codec: the release's DACVAE, or the analytic frames codec."""
    c = ml_collections.ConfigDict()
    c.kind = "dacvae"  # dacvae | frames (analytic, exactly invertible)
    c.sample_rate = 48000
    c.hop_length = 1920
    c.latent_dim = 128
    c.checkpoint = ""  # release dir or file holding audio_codec.* (dacvae)
    # frames codec: path to a per-bin RMS .npy, "" = none, or "auto" = `train` measures it on
    # the training split and keeps it as WORKDIR/latent_scale.npy (train/latent_scale.py);
    # "auto_global": the same, one RMS for all bins.
    c.latent_scale = ""
    c.watermark = False  # run the DACVAE watermark branch when decoding
    c.dtype = "float32"  # dacvae compute dtype: float32 | bfloat16
    # DACVAE sizes (the release's: 64 / [2,8,10,12] / 1024 / 128 / 1536 / [12,10,8,2]).
    c.encoder_dim = 64
    c.encoder_rates = (2, 8, 10, 12)  # product = hop_length
    c.encoder_hidden_dim = 1024  # encoder output width (quantizer.in_proj input)
    c.decoder_dim = 1536
    c.decoder_rates = (12, 10, 8, 2)
    c.wm_rates = (8, 5, 4, 2)  # watermark branch strides, one per decoder block
    c.wm_msg_dim = 128  # watermark message embedding width
    c.decode_chunk_frames = 0  # >0: decode in chunks of this many latent frames
    c.decode_overlap_frames = 4  # frames of context each side of a chunk
    return c


def text_defaults() -> ml_collections.ConfigDict:
    """The text encoder: the release's frozen T5, or a small trainable one."""
    t = ml_collections.ConfigDict()
    t.kind = "t5"  # t5 | small (trainable)
    t.t5_dir = ""  # Hugging Face T5 directory (local or gs://, s3://)
    t.max_length = 512
    t.bucket_length = 0  # 0 = pad to longest; >0 = fixed length buckets
    t.dtype = "float32"  # T5 compute dtype (layer norm variance stays float32)
    t.small = ml_collections.ConfigDict()
    t.small.dim = 128
    t.small.num_layers = 2
    t.small.num_heads = 4
    t.small.vocab = "bytes"  # bytes | words
    t.small.max_length = 64
    t.small.vocab_size = 0  # 0 = automatic: 264 for bytes, 8192 hash buckets for words
    t.small.mlp_ratio = 4
    return t


def vision_defaults() -> ml_collections.ConfigDict:
    """The PE-Core vision tower that encodes visual prompts."""
    v = ml_collections.ConfigDict()
    v.enabled = False
    v.checkpoint = ""  # release dir or file holding vision_encoder.* (empty = random)
    # PE-Core tower sizes (defaults: PE-Core-L14-336); vision.pe.PEConfig reads these.
    v.image_size = 336
    v.patch_size = 14
    v.width = 1024
    v.layers = 24
    v.heads = 16
    v.mlp_ratio = 4.0
    v.pool_heads = 8
    v.output_dim = 1024  # follows model.video_dim (link_derived_fields)
    v.norm_eps = 1e-5
    v.rope_theta = 10000.0
    v.dtype = "float32"  # compute dtype: float32 | bfloat16
    v.param_dtype = "float32"
    v.batch_size = 32  # frames per jitted tower call
    return v


def data_defaults() -> ml_collections.ConfigDict:
    """The data pipeline: shards, crops, mixing and prompts."""
    d = ml_collections.ConfigDict()
    d.dir = ""  # directory of ArrayRecord shards (make-shards output)
    d.tfds_name = ""  # optional: a TFDS dataset name instead of dir
    d.sample_rate = 48000
    d.segment_seconds = 10.0
    d.min_sources = 1  # other sources mixed with the target
    d.max_sources = 2
    d.snr_db = (-15.0, 15.0)
    d.negative_span_prob = 0.3
    d.worker_count = 0
    d.prefetch_buffer_size = 2
    d.shuffle_seed = 0
    d.target_rms_db = -20.0  # target loudness (RMS dBFS) before mixing
    d.max_spans = 4  # K of the (B, K, 3) span array
    d.description_bytes = 128  # fixed width of the UTF-8 description array
    d.activity_threshold_db = -35.0  # "+" spans: frames within this of the loudest
    # Random crops (training) and held-out mixtures (eval) of records longer than the
    # segment hold at least this fraction of active target (activity spans: the manifest's,
    # else measured as for "+" spans); 0 = plain uniform crops (data/crops.py).
    d.min_active_fraction = 0.25
    d.distinct_descriptions = True  # other sources never share the target's description
    d.read_threads = 4
    d.min_input_rate = 8000  # make-shards rejects files recorded below this rate
    d.max_shard_bytes = 256 << 20
    # Latent datasets (samaudio-jax encode-shards output; data.dir pointing at one trains
    # without the codec or T5 in the step).
    d.latent_mixes = "one"  # "one" stored mix drawn per example, or "all" (each an item)
    d.synth = ml_collections.ConfigDict()  # samaudio-jax synth
    d.synth.classes = ("tone", "sweep", "clicks", "noise", "note")
    d.synth.clip_seconds = 1.0
    d.synth.train_per_class = 64
    d.synth.test_per_class = 16
    d.synth.video = False  # also write a video per clip (a coloured square while active)
    d.synth.video_size = 32  # pixels (square frames)
    d.synth.video_fps = 25.0
    return d


def train_defaults() -> ml_collections.ConfigDict:
    """Training: optimiser, schedule, checkpoints, evaluation while training, freezing."""
    t = ml_collections.ConfigDict()
    t.steps = 1000
    t.global_batch_size = 8
    t.learning_rate = 1e-4
    t.warmup_steps = 5000
    t.schedule = "constant"  # constant | cosine
    t.weight_decay = 0.1
    t.grad_clip_norm = 1.0
    t.b1 = 0.9
    t.b2 = 0.999
    t.ema_decay = 0.0  # 0 disables EMA; 0.999 as in fine-tuning
    t.grad_accum_steps = 1
    t.sigma_min = 0.0
    t.time_sampling = "uniform"  # uniform | logit_normal
    t.logit_normal_mean = 0.0
    t.logit_normal_std = 1.0
    # Prompt dropout, one family, drawn in the train step per example and per prompt: each
    # prompt (text, video, spans) is dropped with probability cond_dropout, or with its own
    # rate where set (the three follow cond_dropout until set: FieldReferences). Replaces
    # data.text_dropout / data.span_dropout (config_checks.RENAMED).
    t.cond_dropout = 0.3
    t.text_dropout = t.get_ref("cond_dropout").to_float()
    t.video_dropout = t.get_ref("cond_dropout").to_float()
    t.span_dropout = t.get_ref("cond_dropout").to_float()
    t.log_every = 10
    t.checkpoint_every = 500
    t.keep_checkpoints = 3
    t.async_checkpointing = True
    t.synthetic_data = False  # train on the in-memory synthetic source (smoke runs)
    t.peak_flops = 0.0  # peak FLOP/s per device for MFU; 0 = look up the device kind
    # Evaluation during training (train/validation.py, docs/training.md): every eval_every
    # steps, the held-out flow loss per time bucket on fixed batches (fixed noise and times)
    # and SI-SDRi of a few mixtures separated as `samaudio-jax eval` does.
    t.eval_every = 0  # 0 = off
    t.eval_data_dir = ""  # its test/ split; "" = data.dir's test/ split
    t.eval_seed = 1234  # held-out batches, noise, times and mixtures (= eval --seed)
    t.eval_batches = 4  # held-out batches of global_batch_size for the loss; 0 = none
    t.eval_time_buckets = (0.0, 0.25, 0.5, 0.75, 1.0)  # edges: eval/loss_t0, _t1, ...
    t.eval_num_mixtures = 16  # SI-SDRi mixtures (= eval --num); 0 = loss only
    t.eval_solver = "midpoint"  # (= eval --solver)
    t.eval_ode_steps = 4  # (= eval --steps)
    t.keep_best_by = ""  # e.g. "eval/si_sdri_median": its best checkpoint is never rotated
    t.keep_best_mode = "max"  # max | min
    # Freezing (train/freeze.py). Regexes, re.fullmatch'ed against each parameter's path in
    # the train state, e.g. "flow/transformer/layers/3/attention/wq" (with scan_layers the
    # path still carries the layer index). trainable: empty = all parameters are candidates,
    # else only matching ones; freeze: matching parameters never train (it wins). Frozen
    # parameters get no optimizer state. E.g. all but the last 2 of 22 layers:
    # trainable=("flow/transformer/layers/(20|21)/.*",).
    t.trainable = ()
    t.freeze = ()
    # Few-step distillation (train/distill.py, docs/distillation.md): student_steps > 0 trains
    # a student that samples with that many Euler steps to land where `teacher` (a workdir,
    # export or release dir; also the student's starting weights) lands with
    # teacher_solver x teacher_steps (over [0, 1]; split evenly between the student's steps).
    t.distill = ml_collections.ConfigDict()
    t.distill.teacher = ""
    t.distill.student_steps = 0  # 0 = off (ordinary flow-matching training)
    t.distill.teacher_solver = "midpoint"
    t.distill.teacher_steps = 8
    return t


def sample_defaults() -> ml_collections.ConfigDict:
    """Separation defaults (sample.options.SeparateOptions.from_config reads them)."""
    s = ml_collections.ConfigDict()
    s.solver = "midpoint"
    s.steps = 16
    s.schedule = "uniform"  # time grid of the steps: uniform | late | early (solvers.time_grid)
    s.candidates = 1
    s.chunk_seconds = 30.0
    s.overlap_seconds = 2.0
    s.max_batch = 8  # inputs (or chunks) per jitted call
    s.compilation_cache_dir = ""  # "" = ~/.cache/samaudio_jax/xla; "none" = off
    # After decoding, make target + residual == mixture (sample/consistency.py): none |
    # project (split the mismatch) | ratio / wiener (mask the mixture by |t|^p / (|t|^p + |r|^p)).
    s.mixture_consistency = "none"
    return s


def mesh_defaults() -> ml_collections.ConfigDict:
    """The device mesh and the logical-axis rules."""
    m = ml_collections.ConfigDict()
    m.data = -1  # -1 = fill with the remaining devices
    m.fsdp = 1
    m.tensor = 1
    m.dcn_data = 1  # across slices (multi-slice)
    m.dcn_fsdp = 1
    m.dcn_tensor = 1
    # Logical axis name -> mesh axes (None = replicated). Every parameter and activation
    # annotation in the model uses the logical names on the left.
    m.rules = (
        ("batch", ("data", "fsdp")),
        ("length", None),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv", None),
        ("latent", None),
        ("conv_in", None),
        ("conv_out", None),
        ("layers", None),
        ("vocab", "tensor"),
        ("norm", None),
    )
    return m


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "default"
    c.seed = 0
    c.model = model_defaults()

    c.codec = codec_defaults()
    c.text = text_defaults()
    c.vision = vision_defaults()
    c.data = data_defaults()
    c.train = train_defaults()
    c.sample = sample_defaults()
    c.mesh = mesh_defaults()
    return link_derived_fields(c)


def link_derived_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Makes the fields that follow from others references to them (in place; returns `c`).

    Each derived field is a FieldReference computed from its source, so it tracks the source
    until it is set itself; setting it replaces the reference with that value (the source
    is left alone), and validate_config refuses the pair if they then disagree.
    """
    m = c.model
    m.latent_dim = c.codec.get_ref("latent_dim").to_int()
    m.out_channels = 2 * m.get_ref("latent_dim")
    m.in_channels = 3 * m.get_ref("out_channels")
    c.vision.output_dim = m.get_ref("video_dim").to_int()
    return c
