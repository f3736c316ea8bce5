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


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "default"
    c.seed = 0
    c.model = model_defaults()

    c.codec = ml_collections.ConfigDict()
    c.codec.kind = "dacvae"  # dacvae | frames (analytic, exactly invertible)
    c.codec.sample_rate = 48000
    c.codec.hop_length = 1920
    c.codec.latent_dim = 128
    c.codec.checkpoint = ""  # release dir or file holding audio_codec.* (dacvae)
    # frames codec: path to a per-bin RMS .npy, "" = none, or "auto" = `train` measures it on
    # the training split and keeps it as WORKDIR/latent_scale.npy (train/latent_scale.py);
    # "auto_global": the same, one RMS for all bins.
    c.codec.latent_scale = ""
    c.codec.watermark = False  # run the DACVAE watermark branch when decoding
    c.codec.dtype = "float32"  # dacvae compute dtype: float32 | bfloat16
    # DACVAE sizes (the release's: 64 / [2,8,10,12] / 1024 / 128 / 1536 / [12,10,8,2]).
    c.codec.encoder_dim = 64
    c.codec.encoder_rates = (2, 8, 10, 12)  # product = hop_length
    c.codec.encoder_hidden_dim = 1024  # encoder output width (quantizer.in_proj input)
    c.codec.decoder_dim = 1536
    c.codec.decoder_rates = (12, 10, 8, 2)
    c.codec.wm_rates = (8, 5, 4, 2)  # watermark branch strides, one per decoder block
    c.codec.wm_msg_dim = 128  # watermark message embedding width
    c.codec.decode_chunk_frames = 0  # >0: decode in chunks of this many latent frames
    c.codec.decode_overlap_frames = 4  # frames of context each side of a chunk

    c.text = ml_collections.ConfigDict()
    c.text.kind = "t5"  # t5 | small (trainable)
    c.text.t5_dir = ""  # Hugging Face T5 directory (local or gs://, s3://)
    c.text.max_length = 512
    c.text.bucket_length = 0  # 0 = pad to longest; >0 = fixed length buckets
    c.text.dtype = "float32"  # T5 compute dtype (layer norm variance stays float32)
    c.text.small = ml_collections.ConfigDict()
    c.text.small.dim = 128
    c.text.small.num_layers = 2
    c.text.small.num_heads = 4
    c.text.small.vocab = "bytes"  # bytes | words
    c.text.small.max_length = 64
    c.text.small.vocab_size = 0  # 0 = automatic: 264 for bytes, 8192 hash buckets for words
    c.text.small.mlp_ratio = 4

    c.vision = ml_collections.ConfigDict()
    c.vision.enabled = False
    c.vision.checkpoint = ""  # release dir or file holding vision_encoder.* (empty = random)
    # PE-Core tower sizes (defaults: PE-Core-L14-336); vision.pe.PEConfig reads these.
    c.vision.image_size = 336
    c.vision.patch_size = 14
    c.vision.width = 1024
    c.vision.layers = 24
    c.vision.heads = 16
    c.vision.mlp_ratio = 4.0
    c.vision.pool_heads = 8
    c.vision.output_dim = 1024  # follows model.video_dim (link_derived_fields)
    c.vision.norm_eps = 1e-5
    c.vision.rope_theta = 10000.0
    c.vision.dtype = "float32"  # compute dtype: float32 | bfloat16
    c.vision.param_dtype = "float32"
    c.vision.batch_size = 32  # frames per jitted tower call

    c.data = ml_collections.ConfigDict()
    c.data.dir = ""  # directory of ArrayRecord shards (make-shards output)
    c.data.tfds_name = ""  # optional: a TFDS dataset name instead of dir
    c.data.sample_rate = 48000
    c.data.segment_seconds = 10.0
    c.data.min_sources = 1  # other sources mixed with the target
    c.data.max_sources = 2
    c.data.snr_db = (-15.0, 15.0)
    c.data.negative_span_prob = 0.3
    c.data.worker_count = 0
    c.data.prefetch_buffer_size = 2
    c.data.shuffle_seed = 0
    c.data.target_rms_db = -20.0  # target loudness (RMS dBFS) before mixing
    c.data.max_spans = 4  # K of the (B, K, 3) span array
    c.data.description_bytes = 128  # fixed width of the UTF-8 description array
    c.data.text_dropout = 0.0  # pipeline-side prompt dropout (train.cond_dropout is separate)
    c.data.span_dropout = 0.0
    c.data.activity_threshold_db = -35.0  # "+" spans: frames within this of the loudest
    # Random crops (training) and held-out mixtures (eval) of records longer than the
    # segment hold at least this fraction of active target (activity spans: the manifest's,
    # else measured as for "+" spans); 0 = plain uniform crops (data/crops.py).
    c.data.min_active_fraction = 0.25
    c.data.distinct_descriptions = True  # other sources never share the target's description
    c.data.read_threads = 4
    c.data.min_input_rate = 8000  # make-shards rejects files recorded below this rate
    c.data.max_shard_bytes = 256 << 20
    # Latent datasets (samaudio-jax encode-shards output; data.dir pointing at one trains
    # without the codec or T5 in the step).
    c.data.latent_mixes = "one"  # "one" stored mix drawn per example, or "all" (each an item)
    c.data.synth = ml_collections.ConfigDict()  # samaudio-jax synth
    c.data.synth.classes = ("tone", "sweep", "clicks", "noise", "note")
    c.data.synth.clip_seconds = 1.0
    c.data.synth.train_per_class = 64
    c.data.synth.test_per_class = 16
    c.data.synth.video = False  # also write a video per clip (a coloured square while active)
    c.data.synth.video_size = 32  # pixels (square frames)
    c.data.synth.video_fps = 25.0

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1000
    c.train.global_batch_size = 8
    c.train.learning_rate = 1e-4
    c.train.warmup_steps = 5000
    c.train.schedule = "constant"  # constant | cosine
    c.train.weight_decay = 0.1
    c.train.grad_clip_norm = 1.0
    c.train.b1 = 0.9
    c.train.b2 = 0.999
    c.train.ema_decay = 0.0  # 0 disables EMA; 0.999 as in fine-tuning
    c.train.grad_accum_steps = 1
    c.train.sigma_min = 0.0
    c.train.time_sampling = "uniform"  # uniform | logit_normal
    c.train.logit_normal_mean = 0.0
    c.train.logit_normal_std = 1.0
    c.train.cond_dropout = 0.3  # per modality: text, video, spans
    c.train.log_every = 10
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 3
    c.train.async_checkpointing = True
    c.train.synthetic_data = False  # train on the in-memory synthetic source (smoke runs)
    c.train.peak_flops = 0.0  # peak FLOP/s per device for MFU; 0 = look up the device kind
    # Evaluation during training (train/validation.py, docs/training.md): every eval_every
    # steps, the held-out flow loss per time bucket on fixed batches (fixed noise and times)
    # and SI-SDRi of a few mixtures separated as `samaudio-jax eval` does.
    c.train.eval_every = 0  # 0 = off
    c.train.eval_data_dir = ""  # its test/ split; "" = data.dir's test/ split
    c.train.eval_seed = 1234  # held-out batches, noise, times and mixtures (= eval --seed)
    c.train.eval_batches = 4  # held-out batches of global_batch_size for the loss; 0 = none
    c.train.eval_time_buckets = (0.0, 0.25, 0.5, 0.75, 1.0)  # edges: eval/loss_t0, _t1, ...
    c.train.eval_num_mixtures = 16  # SI-SDRi mixtures (= eval --num); 0 = loss only
    c.train.eval_solver = "midpoint"  # (= eval --solver)
    c.train.eval_ode_steps = 4  # (= eval --steps)
    c.train.keep_best_by = ""  # e.g. "eval/si_sdri_median": its best checkpoint is never rotated
    c.train.keep_best_mode = "max"  # max | min
    # Freezing (train/freeze.py). Regexes, re.fullmatch'ed against each parameter's path in
    # the train state, e.g. "flow/transformer/layers/3/attention/wq" (with scan_layers the
    # path still carries the layer index). trainable: empty = all parameters are candidates,
    # else only matching ones; freeze: matching parameters never train (it wins). Frozen
    # parameters get no optimizer state. E.g. all but the last 2 of 22 layers:
    # trainable=("flow/transformer/layers/(20|21)/.*",).
    c.train.trainable = ()
    c.train.freeze = ()

    c.sample = ml_collections.ConfigDict()
    c.sample.solver = "midpoint"
    c.sample.steps = 16
    c.sample.candidates = 1
    c.sample.chunk_seconds = 30.0
    c.sample.overlap_seconds = 2.0
    c.sample.max_batch = 8  # inputs (or chunks) per jitted call
    c.sample.compilation_cache_dir = ""  # "" = ~/.cache/samaudio_jax/xla; "none" = off

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1 = fill with the remaining devices
    c.mesh.fsdp = 1
    c.mesh.tensor = 1
    c.mesh.dcn_data = 1  # across slices (multi-slice)
    c.mesh.dcn_fsdp = 1
    c.mesh.dcn_tensor = 1
    # Logical axis name -> mesh axes (None = replicated). Every parameter and activation
    # annotation in the model uses the logical names on the left.
    c.mesh.rules = (
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
