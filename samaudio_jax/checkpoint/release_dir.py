"""The release layout: a directory of config.json + checkpoint.pt and/or model.safetensors
with the release's tensor names. The release itself, `samaudio-jax export` and a Hub snapshot
all have it; read_release_dir reads any of them, write_release_dir is its one writer.

Tensor names: the flow network's follow keymaps/flow.py; `audio_codec.*` (keymaps/codec.py),
`vision_encoder.*` (keymaps/vision.py); the release's other parts (span predictor, rankers)
are carried through unchanged. The project's extensions, for models the release cannot
express (docs/export_layout.md):

- text_encoder.<path>: the small byte encoder's parameters (nnx path joined with ".");
- audio_codec.latent_scale: the frames codec's per-bin latent scale;
- config.json["samaudio_jax"]: {"config": the experiment config (whole, or only the fields
  that differ from a release-derived one), "release_architecture": whether the release's own
  code can load the file strictly}.

Reading then writing is bit-exact: every tensor is written back under its name in the dtype
the source held (Bundle.dtypes), the source's config.json sections are kept.
"""

from __future__ import annotations

import copy
import json

import numpy as np

from samaudio_jax.checkpoint.bundle import Bundle, flat_params, load_params, merge_config
from samaudio_jax.checkpoint.release_config import (
    check_model_config,
    model_config_from_release,
    read_release_config,
    release_config_from_model,
)
from samaudio_jax.config_checks import migrate_saved, validate_config
from samaudio_jax.config_schema import default_config
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path, check_reachable
from samaudio_jax.state_dict_io import (
    PT_FILE,
    SAFETENSORS_FILE,
    cast,
    read_state_dict,
    write_state_dict,
)

CONFIG_FILE = "config.json"
FORMATS = {"pt": PT_FILE, "safetensors": SAFETENSORS_FILE}
EXTENSION = "samaudio_jax"
CODEC_PREFIX, VISION_PREFIX, TEXT_PREFIX = "audio_codec.", "vision_encoder.", "text_encoder."
LATENT_SCALE_KEY = "audio_codec.latent_scale"
# Parts of the release no module here runs: carried through bit-exact.
CARRIED_PREFIXES = ("span_predictor.", "visual_ranker.", "text_ranker.")


def is_release_architecture(config) -> bool:
    """True when the release's own code could load the export strictly."""
    m = config.model
    return (
        m.head == "linear"
        and not m.text_to_adaln
        and not m.get("mixture_magnitude", False)
        and config.codec.kind == "dacvae"
        and config.text.kind == "t5"
    )


def is_release_dir(path) -> bool:
    p = as_path(path)
    return (p / CONFIG_FILE).is_file() and any((p / f).is_file() for f in FORMATS.values())


# ---------------------------------------------------------------------------------- read


def _config(directory: Path, release: dict):
    """The experiment config: release-derived, with the extension's fields on top."""
    config_file = directory / CONFIG_FILE
    config = default_config()
    config.model = model_config_from_release(release, source=str(config_file))
    # The release's codec latents and vision features are the flow network's (its
    # codebook_dim and video_feature_dim, checked by model_config_from_release).
    config.codec.latent_dim = config.model.latent_dim
    config.vision.output_dim = config.model.video_dim
    config.codec.kind = "dacvae"
    config.codec.sample_rate = int(release["audio_codec"].get("sample_rate", 48000))
    config.text.kind = "t5"
    extension = release.get(EXTENSION)
    if extension is not None:
        saved = migrate_saved(copy.deepcopy(extension.get("config", {})))
        merge_config(config, saved, f"{config_file}:{EXTENSION}.config")
        check_model_config(config.model, release, source=str(config_file))
    return validate_config(config)


def _split(state: dict, flow_keys: set[str], file: str) -> dict[str, dict]:
    parts = {CODEC_PREFIX: {}, VISION_PREFIX: {}, TEXT_PREFIX: {}, "carried": {}}
    unknown = []
    for key, value in state.items():
        if key in flow_keys:
            continue
        prefix = next(
            (p for p in (CODEC_PREFIX, VISION_PREFIX, TEXT_PREFIX) if key.startswith(p)), None
        )
        if prefix is not None:
            parts[prefix][key[len(prefix) :]] = value
        elif key.startswith(CARRIED_PREFIXES):
            parts["carried"][key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(
            f"{file}: unexpected key(s) {sorted(unknown)[:10]}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        )
    return parts


def _codec(config, codec_state: dict, directory: Path, file: str):
    from samaudio_jax.codec import frames
    from samaudio_jax.codec.factory import build_codec, import_codec_state

    c = config.codec
    if c.kind == "frames":
        scale = codec_state.get(LATENT_SCALE_KEY[len(CODEC_PREFIX) :])
        if scale is None:
            return build_codec(c)
        scale = np.asarray(scale, np.float32)
        if scale.shape != (int(c.hop_length),):
            raise ValueError(
                f"{file}: key {LATENT_SCALE_KEY!r} has shape {scale.shape}, config.json's "
                f"codec.hop_length needs ({c.hop_length},)"
            )
        c.latent_scale = ""  # held by the codec (and by this directory), not by a file
        return frames.FrameDCTCodec(c.sample_rate, c.hop_length, latent_scale=scale)
    if codec_state:
        c.checkpoint = ""
        codec = build_codec(c, random_ok=True)
        import_codec_state(codec, codec_state)
        c.checkpoint = str(directory)  # true: this directory holds audio_codec.*
        return codec
    if c.checkpoint:
        return build_codec(c)
    return None  # a flow-only file: no codec to give


def _text_encoder(config, text_state: dict, file: str):
    from flax import nnx

    from samaudio_jax.text.factory import build_text_encoder

    if config.text.kind == "small":
        if not text_state:
            raise ValueError(f"{file}: config.text.kind is 'small' but it holds no {TEXT_PREFIX}*")
        with nnx.use_eager_sharding(False):
            encoder = build_text_encoder(config.text, rngs=nnx.Rngs(int(config.seed) + 1))
        tensors = {k.replace(".", "/"): v for k, v in text_state.items()}
        load_params(encoder, tensors, f"{file} ({TEXT_PREFIX}*)")
        return encoder
    if config.text.t5_dir:
        with nnx.use_eager_sharding(False):
            return build_text_encoder(config.text, rngs=nnx.Rngs(0))
    return None  # the release's T5 is not in the file: text.t5_dir names it


def _vision(config, vision_state: dict, release: dict, directory: Path):
    if not vision_state:
        return None
    from samaudio_jax.vision.factory import load_vision_part

    part = load_vision_part(vision_state, release)
    v, cfg = config.vision, part.tower.cfg
    for field in ("image_size", "patch_size", "width", "layers", "heads", "pool_heads"):
        v[field] = int(getattr(cfg, field))
    v.mlp_ratio, v.output_dim = float(cfg.mlp_ratio), int(cfg.output_dim)
    v.checkpoint = str(directory)
    return part


def read_release_dir(path, *, t5_dir: str | None = None) -> Bundle:
    """A Bundle of every part the directory holds (see the module docstring)."""
    from samaudio_jax.model.factory import (
        build_flow,
        flow_arrays_from_state_dict,
        flow_release_keys,
    )

    check_reachable(path)  # an unreachable bucket is named, not taken for a missing file
    directory = as_path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"release checkpoint: no such file or directory: {directory}")
    release = read_release_config(directory / CONFIG_FILE)
    config = _config(directory, release)
    if t5_dir:
        config.text.t5_dir = str(t5_dir)
    state, file = read_state_dict(directory)
    arrays = flow_arrays_from_state_dict(state, config.model, source=file)
    parts = _split(state, set(flow_release_keys(config.model)), file)
    model = build_flow(config.model, arrays, seed=int(config.seed))
    return Bundle(
        config=config,
        model=model,
        codec=_codec(config, parts[CODEC_PREFIX], directory, file),
        text_encoder=_text_encoder(config, parts[TEXT_PREFIX], file),
        vision_part=_vision(config, parts[VISION_PREFIX], release, directory),
        carried=parts["carried"],
        dtypes={k: str(v.dtype) for k, v in state.items()},
        release_config={k: v for k, v in release.items() if k != EXTENSION},
        source=str(directory),
    )


# --------------------------------------------------------------------------------- write


def _for_export(bundle: Bundle) -> Bundle:
    """The bundle export writes: the one place where LoRA adapters are merged into full
    weights (W + alpha/r A B) and the config says LoRA is off, so the release layout holds
    plain tensors that the release's own code loads."""
    if bundle.config.model.lora.rank:
        from samaudio_jax.model import lora

        return lora.merged_separator(bundle)
    return bundle


def state_dict(bundle: Bundle) -> dict[str, np.ndarray]:
    """Every tensor the bundle holds, under the release layout's names and source dtypes."""
    from samaudio_jax.model.factory import flow_state_dict

    config = bundle.config
    state = flow_state_dict(bundle.model, config.model)
    if config.text.kind == "small" and bundle.text_encoder is not None:
        for name, value in flat_params(bundle.text_encoder).items():
            state[TEXT_PREFIX + name.replace("/", ".")] = value
    if config.codec.kind == "frames" and bundle.codec is not None:
        state[LATENT_SCALE_KEY] = np.asarray(bundle.codec.scale[...], np.float32)
    elif bundle.codec is not None:
        from samaudio_jax.codec.factory import export_codec_state

        for k, v in export_codec_state(bundle.codec).items():
            state[CODEC_PREFIX + k] = np.asarray(v)
    if bundle.vision_part is not None:
        from samaudio_jax.vision.factory import export_vision_part

        for k, v in export_vision_part(bundle.vision_part).items():
            state[VISION_PREFIX + k] = np.asarray(v)
    state.update(bundle.carried)
    for key, value in state.items():
        dtype = bundle.dtypes.get(key)
        if dtype is not None and str(value.dtype) != dtype:
            state[key] = cast(value, dtype)
    return {k: np.asarray(v, order="C") for k, v in state.items()}  # 0-d stays 0-d


def release_config(bundle: Bundle) -> dict:
    """config.json: the release's fields for this model over the source's other sections,
    and the project's extension (the experiment config)."""
    config = bundle.config
    content = copy.deepcopy(bundle.release_config)
    for key, value in release_config_from_model(config.model).items():
        if isinstance(value, dict) and isinstance(content.get(key), dict):
            content[key].update(value)
        else:
            content[key] = value
    saved = json.loads(config.to_json())
    # Parts this directory holds are read from it, not from where the source found them.
    if bundle.codec is not None:
        saved["codec"]["checkpoint"] = saved["codec"]["latent_scale"] = ""
    if bundle.vision_part is not None:
        saved["vision"]["checkpoint"] = ""
    content[EXTENSION] = {"config": saved, "release_architecture": is_release_architecture(config)}
    return content


def write_release_dir(bundle: Bundle, out_dir, formats=("pt", "safetensors")) -> list[str]:
    """Writes out_dir/{checkpoint.pt, model.safetensors, config.json}; each file atomically,
    config.json last (a directory without it is not a checkpoint). Returns the files written."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"formats: expected some of {sorted(FORMATS)}, got {fmt!r}")
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle = _for_export(bundle)
    state = state_dict(bundle)
    written = []
    for fmt in formats:
        write_state_dict(state, out / FORMATS[fmt])
        written.append(str(out / FORMATS[fmt]))
    text = json.dumps(release_config(bundle), indent=2) + "\n"
    atomic_write_text(out / CONFIG_FILE, text)
    written.append(str(out / CONFIG_FILE))
    return written
