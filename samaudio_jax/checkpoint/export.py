"""Export a trained separator to the release's directory layout, and import one back.

An export directory holds config.json, checkpoint.pt and model.safetensors (the same
tensors). The flow network uses the release's key names (flow_keys.py); a DACVAE codec's
weights go under audio_codec.* (codec_keys.py). The project's extensions, for models the
release cannot express (docs/export_layout.md):

- text_encoder.<path>: the small byte encoder's parameters (nnx path joined with ".");
- audio_codec.latent_scale: the frames codec's per-bin latent scale;
- config.json["samaudio_jax"]: {"config": the full experiment config,
  "release_architecture": whether the release itself can load the file strictly}.

Import rebuilds the separator from these exactly (the round trip is bit-exact).
"""

from __future__ import annotations

import json

import numpy as np

from samaudio_jax.checkpoint import release_io
from samaudio_jax.checkpoint.release_config import (
    check_model_config,
    model_config_from_release,
    read_release_config,
    release_config_from_model,
)
from samaudio_jax.config_schema import default_config
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.model import lora
from samaudio_jax.paths import Path, as_path
from samaudio_jax.sample.loading import Separator, _merge, build_separator, flat_params, load_params

EXTENSION = "samaudio_jax"
LATENT_SCALE_KEY = "audio_codec.latent_scale"
TEXT_PREFIX = "text_encoder."
LATENT_SCALE_FILE = "latent_scale.npy"


def is_release_architecture(config) -> bool:
    """True when the release's own code could load the export strictly."""
    m = config.model
    return (
        m.head == "linear"
        and not m.text_to_adaln
        and config.codec.kind == "dacvae"
        and config.text.kind == "t5"
    )


def export_state_dict(separator: Separator) -> dict[str, np.ndarray]:
    config = separator.config
    state = release_io.flow_state_dict(separator.model, config.model)
    if config.text.kind == "small":
        for name, value in flat_params(separator.text_encoder).items():
            state[TEXT_PREFIX + name.replace("/", ".")] = value
    if config.codec.kind == "frames":
        state[LATENT_SCALE_KEY] = np.asarray(separator.codec.scale[...], np.float32)
    elif config.codec.kind == "dacvae":
        from samaudio_jax.checkpoint.codec_keys import export_codec_state

        for k, v in export_codec_state(separator.codec).items():
            state["audio_codec." + k] = np.asarray(v)
    return state


def export_separator(separator: Separator, out_dir) -> list[str]:
    """Writes out_dir/{checkpoint.pt, model.safetensors, config.json} (config.json last)."""
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if separator.config.model.lora.rank:  # LoRA: export the plain weights W + scale A B
        separator = lora.merged_separator(separator)
    state = {k: np.ascontiguousarray(v) for k, v in export_state_dict(separator).items()}
    written = []
    for name in (release_io.PT_FILE, release_io.SAFETENSORS_FILE):
        release_io.write_state_dict(state, out / name)
        written.append(str(out / name))
    config = separator.config
    content = release_config_from_model(config.model)
    content[EXTENSION] = {
        "config": json.loads(config.to_json()),
        "release_architecture": is_release_architecture(config),
    }
    text = json.dumps(content, indent=2) + "\n"
    atomic_write_text(out / release_io.CONFIG_FILE, text)
    written.append(str(out / release_io.CONFIG_FILE))
    return written


def _config_from_export(directory: Path, t5_dir: str | None):
    config_file = directory / release_io.CONFIG_FILE
    if not config_file.is_file():
        raise ValueError(
            f"--checkpoint: {directory} has no {release_io.CONFIG_FILE} (the release layout "
            "holds config.json and checkpoint.pt or model.safetensors)"
        )
    release = read_release_config(config_file)
    extension = release.get(EXTENSION)
    config = default_config()
    if extension is not None:
        _merge(config, extension.get("config", {}), f"{config_file}:{EXTENSION}.config")
        check_model_config(config.model, release, source=str(config_file))
    else:
        config.model = model_config_from_release(release, source=str(config_file))
        config.codec.kind = "dacvae"
        config.codec.sample_rate = int(release["audio_codec"].get("sample_rate", 48000))
        config.text.kind = "t5"
    if t5_dir:
        config.text.t5_dir = str(t5_dir)
    return config


def import_separator(directory, aux_dir, t5_dir: str | None = None) -> Separator:
    """A Separator from an export (or release) directory. Files the config must point to
    (the frames codec's latent scale) are written into `aux_dir`."""
    directory = as_path(directory)
    if not directory.is_dir():
        raise ValueError(f"--checkpoint: {directory} is not a directory")
    config = _config_from_export(directory, t5_dir)
    state, file = release_io.read_state_dict(directory)
    flow_arrays = release_io.flow_arrays_from_state_dict(state, config.model, source=file)
    if config.codec.kind == "frames":
        if LATENT_SCALE_KEY in state:
            from samaudio_jax.codec import frames

            aux = as_path(aux_dir)
            aux.mkdir(parents=True, exist_ok=True)
            path = aux / LATENT_SCALE_FILE
            scale = np.asarray(state[LATENT_SCALE_KEY], np.float32)
            if scale.shape != (int(config.codec.hop_length),):
                raise ValueError(
                    f"{file}: key {LATENT_SCALE_KEY!r} has shape {scale.shape}, config.json's "
                    f"codec.hop_length needs ({config.codec.hop_length},)"
                )
            frames.save_latent_scale(str(path), scale)
            config.codec.latent_scale = str(path)  # as_path made it absolute (or a URL)
        else:
            config.codec.latent_scale = ""
    elif config.codec.kind == "dacvae":
        config.codec.checkpoint = ""
    separator = build_separator(config, seed=int(config.seed))
    separator.model = release_io.build_flow(config.model, flow_arrays, seed=int(config.seed))
    if config.text.kind == "small":
        text = {
            k[len(TEXT_PREFIX) :].replace(".", "/"): v
            for k, v in state.items()
            if k.startswith(TEXT_PREFIX)
        }
        load_params(separator.text_encoder, text, f"{file} ({TEXT_PREFIX}*)")
    if config.codec.kind == "dacvae":
        codec_state = {
            k[len("audio_codec.") :]: v for k, v in state.items() if k.startswith("audio_codec.")
        }
        if codec_state:
            from samaudio_jax.checkpoint.codec_keys import import_codec_state

            import_codec_state(separator.codec, codec_state)
    return separator
