"""The one place a whole experiment config is checked: `validate_config`, run by every
entry point once a config is loaded (cli/config_loader.py for --config files and overrides,
checkpoint/bundle.py and release_dir.py for a checkpoint's saved config, build_modules and
train() for configs built in Python) and before any command reads a file or writes one.
Each failure is a ConfigError of one line naming the field(s), the value(s) and the rule.

Checked: values their types alone do not catch (pairs, positive numbers, probabilities) in
every section; the rules inside a section (model.dim splits into heads, out_channels =
2 * latent_dim, a codec's latent and hop sizes); and the links between sections
(`validate_links`: model.latent_dim = codec.latent_dim, vision.output_dim =
model.video_dim where the tower is used, the codec hop a whole number of samples at
data.sample_rate). The derived fields follow their sources by default
(config_schema.link_derived_fields). What only the run time knows (a mesh that does not fit
the devices found, a dataset's feature width) is checked where it is found, also by name.
"""

from __future__ import annotations

import math
import numbers

HEADS = ("linear", "gated_mix")  # model.head
ATTENTION_IMPLS = ("xla", "cudnn")  # model.attention_impl


# Fields that moved: old name -> new name. A config file or override naming an old one is
# refused, naming the new; a saved config (a workdir's, a release's) is read with its value
# moved (migrate_saved), so old checkpoints still load and resume alike.
RENAMED = {
    "data.text_dropout": "train.text_dropout",
    "data.span_dropout": "train.span_dropout",
}
_RENAME_WHY = "prompt dropout is one family, drawn in the train step (config.train.cond_dropout)"


class ConfigError(ValueError):
    """A config value is unusable; the message names the field (`config.data.snr_db`)."""


class ConfigFileError(ConfigError, FileNotFoundError):
    """The experiment file named by --config does not exist."""


def _number(section, name: str, where: str, *, integer: bool = False):
    value = section[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"config.{where}.{name}: expected {kind}, got {value!r}")
    if integer and not isinstance(value, numbers.Integral):
        raise ConfigError(f"config.{where}.{name}: expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config.{where}.{name}: expected a finite number, got {value!r}")
    return value


def _at_least(section, name: str, where: str, low, *, integer: bool = True) -> None:
    value = _number(section, name, where, integer=integer)
    if value < low:
        raise ConfigError(f"config.{where}.{name}: expected >= {low}, got {value!r}")


def _positive(section, name: str, where: str, *, integer: bool = False) -> None:
    value = _number(section, name, where, integer=integer)
    if value <= 0:
        raise ConfigError(f"config.{where}.{name}: expected a positive number, got {value!r}")


def _probability(section, name: str, where: str) -> None:
    value = _number(section, name, where)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"config.{where}.{name}: expected a probability in [0, 1], got {value}")


def _ordered_pair(section, name: str, where: str) -> None:
    value = section[name]
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value)
    ):
        raise ConfigError(
            f"config.{where}.{name}: expected a pair of numbers (low, high), got {value!r}"
        )
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"config.{where}.{name}: expected finite numbers, got {tuple(value)}")
    if low > high:
        raise ConfigError(f"config.{where}.{name}: expected low <= high, got {tuple(value)}")


def validate_data_fields(data) -> None:
    """config.data: rates, lengths, counts, probabilities and the snr_db pair."""
    where = "data"
    _positive(data, "sample_rate", where, integer=True)
    _positive(data, "segment_seconds", where)
    if round(data.segment_seconds * data.sample_rate) < 1:
        raise ConfigError(
            f"config.data.segment_seconds: {data.segment_seconds} s at {data.sample_rate} Hz "
            "is less than one sample"
        )
    _at_least(data, "min_sources", where, 0)
    _at_least(data, "max_sources", where, 0)
    if data.min_sources > data.max_sources:
        raise ConfigError(
            f"config.data.min_sources: {data.min_sources} is more than "
            f"config.data.max_sources {data.max_sources}"
        )
    _ordered_pair(data, "snr_db", where)
    _probability(data, "negative_span_prob", where)
    if "min_active_fraction" in data:
        _probability(data, "min_active_fraction", where)
    for name in ("target_rms_db", "activity_threshold_db"):
        _number(data, name, where)
    for name in ("max_spans", "description_bytes", "read_threads", "max_shard_bytes"):
        _at_least(data, name, where, 1)
    for name in ("worker_count", "prefetch_buffer_size", "shuffle_seed", "min_input_rate"):
        _at_least(data, name, where, 0)
    if "synth" in data:
        synth, where = data.synth, "data.synth"
        _positive(synth, "clip_seconds", where)
        _positive(synth, "video_fps", where)
        _at_least(synth, "video_size", where, 1)
        for name in ("train_per_class", "test_per_class"):
            _at_least(synth, name, where, 0)


def validate_sample_fields(sample) -> None:
    """config.sample: solver steps, candidates, chunking and batch size."""
    where = "sample"
    for name in ("steps", "candidates", "max_batch"):
        _at_least(sample, name, where, 1)
    _at_least(sample, "overlap_seconds", where, 0, integer=False)
    consistency = sample.get("mixture_consistency", "none")
    if consistency not in ("none", "project", "ratio", "wiener"):  # = sample/consistency.MODES
        raise ConfigError(
            "config.sample.mixture_consistency: expected one of none, project, ratio, wiener, "
            f"got {consistency!r}"
        )
    if sample.get("chunk_seconds") is None:  # never chunked
        return
    _positive(sample, "chunk_seconds", where)
    if sample.overlap_seconds >= sample.chunk_seconds:
        raise ConfigError(
            f"config.sample.overlap_seconds: {sample.overlap_seconds} must be less than "
            f"config.sample.chunk_seconds {sample.chunk_seconds}"
        )


def validate_model_fields(model) -> None:
    """config.model: widths, depth and heads (dim splits into an even head_dim), the
    channel sizes of the flow state, the head and attention kinds."""
    where = "model"
    for name in ("dim", "num_layers", "num_heads", "latent_dim", "out_channels", "in_channels"):
        _at_least(model, name, where, 1)
    if model.dim % model.num_heads:
        raise ConfigError(
            f"config.model.dim: {model.dim} does not split into "
            f"config.model.num_heads {model.num_heads} heads"
        )
    if (model.dim // model.num_heads) % 2:
        raise ConfigError(
            f"config.model.dim / config.model.num_heads: head_dim {model.dim // model.num_heads} "
            "must be even (RoPE rotates pairs)"
        )
    _must_equal(model, "out_channels", 2 * model.latent_dim, "2 * config.model.latent_dim")
    _must_equal(model, "in_channels", 3 * model.out_channels, "3 * config.model.out_channels")
    _probability(model, "dropout", where)
    if model.get("head", "linear") not in HEADS:
        raise ConfigError(f"config.model.head: expected one of {HEADS}, got {model.head!r}")
    if model.get("attention_impl", "xla") not in ATTENTION_IMPLS:
        raise ConfigError(
            f"config.model.attention_impl: expected one of {ATTENTION_IMPLS}, "
            f"got {model.attention_impl!r}"
        )


def _must_equal(section, name: str, expected, rule: str, where: str = "model") -> None:
    if section[name] != expected:
        raise ConfigError(f"config.{where}.{name}: {section[name]} must equal {rule} = {expected}")


def validate_codec_fields(codec) -> None:
    """config.codec: sample rate, hop and latent sizes, and the hop each kind implies (a
    frames codec has one latent per sample of a frame; a DACVAE's hop is the product of its
    encoder's strides)."""
    for name in ("sample_rate", "hop_length", "latent_dim"):
        _at_least(codec, name, "codec", 1)
    kind = codec.get("kind", "dacvae")
    if kind not in ("dacvae", "frames"):
        raise ConfigError(f"config.codec.kind: expected 'dacvae' or 'frames', got {kind!r}")
    if kind == "frames":
        rule = "config.codec.hop_length (the frames codec has one latent per sample of a frame)"
        _must_equal(codec, "latent_dim", codec.hop_length, rule, "codec")
    elif "encoder_rates" in codec:
        rule = f"the product of config.codec.encoder_rates {tuple(codec.encoder_rates)}"
        _must_equal(codec, "hop_length", math.prod(codec.encoder_rates), rule, "codec")


def data_hop_samples(config) -> int:
    """The codec hop in samples at config.data.sample_rate (one latent frame, one video
    feature); a ConfigError when it is not a whole number."""
    hop, codec_rate = int(config.codec.hop_length), int(config.codec.sample_rate)
    data_rate = int(config.data.sample_rate)
    value = hop * data_rate / codec_rate
    if value != int(value) or value <= 0:
        raise ConfigError(
            f"config.codec.hop_length: {hop} at config.codec.sample_rate {codec_rate} is not a "
            f"whole number of samples at config.data.sample_rate {data_rate}"
        )
    return int(value)


def validate_links(config) -> None:
    """The rules between sections: the flow works on the codec's latents, the video branch
    takes the vision tower's features, a latent frame is a whole number of data samples."""
    model = config.model
    if "codec" in config and model.latent_dim != config.codec.latent_dim:
        raise ConfigError(
            f"config.model.latent_dim: {model.latent_dim} must equal config.codec.latent_dim "
            f"{config.codec.latent_dim} (the flow network works on the codec's latents)"
        )
    vision = config.get("vision")
    used = vision is not None and (vision.get("enabled") or vision.get("checkpoint"))
    if used and vision.output_dim != model.video_dim:  # unused, its width is moot
        raise ConfigError(
            f"config.vision.output_dim: {config.vision.output_dim} must equal "
            f"config.model.video_dim {model.video_dim} (the flow network takes the vision "
            "tower's features)"
        )
    if "codec" in config and "data" in config:
        data_hop_samples(config)


def validate_text_fields(text) -> None:
    """config.text: lengths, and the sizes of the small trainable encoder."""
    _at_least(text, "max_length", "text", 1)
    if "small" in text:
        small = text.small
        for name in ("dim", "num_layers", "num_heads", "max_length", "mlp_ratio"):
            _at_least(small, name, "text.small", 1)
        if small.dim % small.num_heads:
            raise ConfigError(
                f"config.text.small.dim: {small.dim} does not split into "
                f"config.text.small.num_heads {small.num_heads} heads"
            )


def validate_train_fields(train) -> None:
    """config.train: counts and the batch (finite learning-rate-like values are checked as
    overrides are read)."""
    where = "train"
    _at_least(train, "steps", where, 0)
    for name in ("global_batch_size", "grad_accum_steps", "checkpoint_every"):
        _at_least(train, name, where, 1)
    _at_least(train, "warmup_steps", where, 0)
    for name in ("cond_dropout", "text_dropout", "video_dropout", "span_dropout"):
        if name in train:  # (a saved config from before the per-prompt rates has only one)
            _probability(train, name, where)
    validate_eval_fields(train)


def validate_eval_fields(train) -> None:
    """config.train.eval_*, keep_best_*: evaluation during training (train/validation.py)."""
    if "eval_every" not in train:  # a saved config from before these fields
        return
    where = "train"
    for name in ("eval_every", "eval_batches", "eval_num_mixtures"):
        _at_least(train, name, where, 0)
    _at_least(train, "eval_ode_steps", where, 1)
    edges = tuple(train.eval_time_buckets)
    if (
        len(edges) < 2
        or not all(isinstance(e, numbers.Real) for e in edges)
        or edges[0] < 0
        or edges[-1] > 1
        or any(a >= b for a, b in zip(edges, edges[1:]))
    ):
        raise ConfigError(
            f"config.train.eval_time_buckets: expected increasing edges in [0, 1] "
            f"(at least two), got {edges}"
        )
    if train.keep_best_mode not in ("max", "min"):
        raise ConfigError(
            f"config.train.keep_best_mode: expected 'max' or 'min', got {train.keep_best_mode!r}"
        )
    if not train.keep_best_by:
        return
    every, ckpt = int(train.eval_every), int(train.checkpoint_every)
    if every == 0:
        raise ConfigError(
            f"config.train.keep_best_by: {train.keep_best_by!r} needs evaluation; set "
            "config.train.eval_every"
        )
    if ckpt % every and every % ckpt:
        raise ConfigError(
            f"config.train.keep_best_by: checkpoints (every {ckpt} steps) and evaluations "
            f"(every {every}) seldom fall on the same step; make one of train.checkpoint_every and "
            "train.eval_every divide the other"
        )


def validate_mesh_fields(mesh) -> None:
    """config.mesh: axis sizes (positive, or -1 = fill within a slice) and the rules'
    shape, (logical name, None | mesh axis | tuple of mesh axes) each."""
    for name in ("data", "fsdp", "tensor"):
        size = _number(mesh, name, "mesh", integer=True)
        if size == 0 or size < -1:
            raise ConfigError(f"config.mesh.{name}: expected a positive size or -1, got {size}")
    for name in ("dcn_data", "dcn_fsdp", "dcn_tensor"):
        _at_least(mesh, name, "mesh", 1)
    for i, rule in enumerate(mesh.rules):
        axes = rule[1] if isinstance(rule, (tuple, list)) and len(rule) == 2 else 0
        if isinstance(axes, (tuple, list)):
            ok = all(isinstance(a, str) for a in axes)
        else:
            ok = axes is None or isinstance(axes, str)
        if not (ok and isinstance(rule[0], str)):
            raise ConfigError(
                f"config.mesh.rules[{i}]: expected (logical_name, mesh_axes), got {rule!r}"
            )


_SECTIONS = {
    "model": validate_model_fields,
    "codec": validate_codec_fields,
    "text": validate_text_fields,
    "data": validate_data_fields,
    "train": validate_train_fields,
    "sample": validate_sample_fields,
    "mesh": validate_mesh_fields,
}


def renamed_message(old: str) -> str:
    return f"config.{old}: renamed config.{RENAMED[old]} ({_RENAME_WHY})"


def migrate_saved(data: dict) -> dict:
    """A saved config dict with renamed fields moved (in place; returns it). The pipeline's
    old prompt dropout p_old came before the step's own p: the prompt's rate becomes
    1 - (1 - p_old)(1 - p), the same chance of being dropped."""
    for old, new in RENAMED.items():
        (old_section, old_name), (new_section, new_name) = old.split("."), new.split(".")
        value = data.get(old_section, {}).pop(old_name, None)
        if not value or new_name in data.get(new_section, {}):
            continue
        step = float(data.get(new_section, {}).get("cond_dropout", 0.0))
        data.setdefault(new_section, {})[new_name] = 1.0 - (1.0 - float(value)) * (1.0 - step)
    return data


def validate_config(config):
    """Every check above on the sections `config` has (a separator's saved config may
    lack some), then the links between them. Returns `config`."""
    for old in RENAMED:
        section, name = old.split(".")
        if section in config and name in config[section]:
            raise ConfigError(renamed_message(old))
    for section, check in _SECTIONS.items():
        if section in config:
            check(config[section])
    if "model" in config:
        validate_links(config)
    return config
