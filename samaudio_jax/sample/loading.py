"""A separator directory: what `samaudio-jax separate --checkpoint DIR` loads.

Contract (a small, self-describing layout; converters from Orbax training checkpoints or the
release's checkpoint.pt write it):

    DIR/config.json        the experiment ConfigDict as JSON (ConfigDict.to_json()); fields
                           it lacks take the defaults of config_schema.default_config()
    DIR/model.safetensors  the flow network's nnx.Param values, one tensor per parameter,
                           named by its nnx state path joined with "/"
                           (e.g. "transformer/layers/0/attention/wq")
    DIR/text.safetensors   the text encoder's nnx.Param values, same naming; required when
                           config.text.kind == "small" (a T5 loads from config.text.t5_dir)

The codec comes from config.codec (the analytic frames codec needs no weights; DACVAE loads
config.codec.checkpoint). `save_separator` writes this layout atomically, config.json last.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from safetensors.numpy import load, save

from samaudio_jax.config_schema import default_config
from samaudio_jax.io_atomic import atomic_write_bytes, atomic_write_text
from samaudio_jax.paths import as_path

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TEXT_FILE = "text.safetensors"


def _tuplify(value):
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def _merge(base: ml_collections.ConfigDict, update: dict, where: str) -> None:
    for name, value in update.items():
        if (
            isinstance(value, dict)
            and name in base
            and isinstance(base[name], ml_collections.ConfigDict)
        ):
            _merge(base[name], value, f"{where}.{name}")
        elif name in base and isinstance(base[name], tuple) and isinstance(value, list):
            base[name] = _tuplify(value)
        else:
            try:
                base[name] = value
            except TypeError as err:
                raise ValueError(f"{where}.{name}: {err}") from None


def config_from_json(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Reads config.json onto the default config (so older files gain new fields)."""
    path = as_path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (the config), got {type(data).__name__}")
    config = default_config()
    _merge(config, data, "config")
    return config


def flat_params(module: nnx.Module) -> dict[str, np.ndarray]:
    """{"a/b/0/c": array} for every nnx.Param of `module`."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(module, nnx.Param)):
        out["/".join(str(p) for p in path)] = np.asarray(var.get_value())
    return out


def load_params(module: nnx.Module, tensors: dict[str, np.ndarray], where: str) -> None:
    """Sets every nnx.Param of `module` from `tensors`; ValueError on missing/extra/mis-shaped."""
    state = nnx.state(module, nnx.Param)
    flat = list(nnx.to_flat_state(state))
    names = {"/".join(str(p) for p in path) for path, _ in flat}
    missing = sorted(names - set(tensors))
    extra = sorted(set(tensors) - names)
    if missing or extra:
        raise ValueError(
            f"{where}: parameters do not match the config's model: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    for path, var in flat:
        name = "/".join(str(p) for p in path)
        value = tensors[name]
        current = var.get_value()
        if tuple(value.shape) != tuple(current.shape):
            raise ValueError(
                f"{where}: parameter {name} has shape {tuple(value.shape)}, the config's model "
                f"expects {tuple(current.shape)}"
            )
        var.set_value(jnp.asarray(value, dtype=current.dtype))
    nnx.update(module, state)


@dataclasses.dataclass
class Separator:
    """A loaded separator: config, flow network, codec and text encoder."""

    config: ml_collections.ConfigDict
    model: nnx.Module
    codec: nnx.Module
    text_encoder: nnx.Module | None
    vision: object | None = None  # vision.features.FrameEncoder, loaded on first video prompt

    def separate(
        self,
        audios,
        descriptions,
        spans=None,
        video_features=None,
        *,
        key=None,
        videos=None,
        masks=None,
        **kw,
    ):
        """`sample.separate` with the config's sampling defaults (solver, steps, candidates,
        chunking, prediction); keyword arguments override them.

        Visual prompts: `video_features` ((Dv, T_i) per input, None = no video), or `videos`
        (paths or vision.video.Video, None per input = no video) with optional `masks`
        (non-zero = hidden), encoded by the PE-Core tower of config.vision at the latent rate.
        """
        from samaudio_jax.sample.separate import separate

        if videos is not None:
            if video_features is not None:
                raise ValueError("video_features and videos: give one of them, not both")
            video_features, audios = self.video_features(audios, videos, masks)

        s = self.config.sample
        options = dict(
            solver=s.solver,
            steps=s.steps,
            candidates=s.candidates,
            chunk_seconds=s.chunk_seconds,
            overlap_seconds=s.overlap_seconds,
            prediction=self.config.model.prediction,
            sigma_min=self.config.train.sigma_min,
            max_batch=s.get("max_batch", 8),
        )
        cache = s.get("compilation_cache_dir", "")
        if cache:
            options["cache_dir"] = None if cache == "none" else cache
        options.update(kw)
        key = jax.random.key(self.config.seed) if key is None else key
        return separate(
            self.model,
            self.codec,
            self.text_encoder,
            audios,
            descriptions,
            spans,
            video_features,
            key=key,
            **options,
        )

    def video_features(self, audios, videos, masks=None):
        """(video_features, loaded audios): per input (Dv, T_i) features of its (masked) video
        at the latent rate of the input's length, or None where videos[i] is None."""
        import math

        from samaudio_jax.checkpoint.vision_io import frame_encoder_from_config
        from samaudio_jax.sample import audio_io
        from samaudio_jax.vision.features import per_input_video_features

        rate, hop = self.codec.sample_rate, self.codec.hop_length
        waves = [audio_io.load_audio(a, rate, where=f"audios[{i}]") for i, a in enumerate(audios)]
        if len(videos) != len(waves):
            raise ValueError(f"videos: expected one per input ({len(waves)}), got {len(videos)}")
        if self.vision is None:
            self.vision = frame_encoder_from_config(self.config.vision)
        frames = [math.ceil(len(w) / hop) for w in waves]
        masks = None if masks is None else list(masks)
        feats = per_input_video_features(
            self.vision, list(videos), frames, masks, hop_length=hop, sample_rate=rate
        )
        return feats, waves


def build_separator(config: ml_collections.ConfigDict, seed: int = 0) -> Separator:
    """A separator with freshly initialised (random) weights."""
    from samaudio_jax.codec.factory import build_codec
    from samaudio_jax.model.flow import SAMAudioFlow
    from samaudio_jax.text.factory import build_text_encoder

    model = SAMAudioFlow(config.model, rngs=nnx.Rngs(seed))
    codec = build_codec(config.codec)
    with nnx.use_eager_sharding(False):
        text = build_text_encoder(config.text, rngs=nnx.Rngs(seed + 1))
    return Separator(config, model, codec, text)


def load_separator(checkpoint_dir: str | os.PathLike) -> Separator:
    """Loads a separator directory (see the module docstring for the contract)."""
    directory = as_path(checkpoint_dir)
    if not directory.is_dir():
        raise ValueError(f"--checkpoint: {directory} is not a directory")
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"--checkpoint: {directory} has no {CONFIG_FILE}; a separator directory holds "
            f"{CONFIG_FILE} (the experiment config as JSON) and {MODEL_FILE} (see "
            "samaudio_jax/sample/loading.py)"
        )
    config = config_from_json(config_path)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ValueError(f"--checkpoint: {directory} has no {MODEL_FILE} (the flow weights)")
    text_path = directory / TEXT_FILE
    if config.text.kind == "small" and not text_path.is_file():
        raise ValueError(
            f"--checkpoint: {directory} has no {TEXT_FILE}; config.text.kind is 'small', whose "
            "trained weights live there"
        )
    separator = build_separator(config)
    load_params(separator.model, load(model_path.read_bytes()), str(model_path))
    if config.text.kind == "small":
        load_params(separator.text_encoder, load(text_path.read_bytes()), str(text_path))
    return separator


def save_separator(directory: str | os.PathLike, separator: Separator) -> None:
    """Writes the separator directory; each file atomically, config.json last."""
    directory = as_path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / MODEL_FILE, save(flat_params(separator.model)))
    if separator.config.text.kind == "small" and separator.text_encoder is not None:
        atomic_write_bytes(directory / TEXT_FILE, save(flat_params(separator.text_encoder)))
    text = separator.config.to_json(indent=2)
    atomic_write_text(directory / CONFIG_FILE, text)
