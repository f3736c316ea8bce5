"""Build the configured codec from the `codec` section of the experiment config, and move a
DACVAE's weights between it and the release's `audio_codec.*` tensors (keymaps/codec.py).

A DACVAE without weights is random: its latents mean nothing, so everything trained or
separated with it is meaningless. build_codec warns loudly (RandomCodecWarning) when
`codec.checkpoint` is empty; `train` refuses such a run unless asked (--allow_random_codec),
and `samaudio_jax.load` always gives the codec the source holds.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
from flax import nnx

from samaudio_jax.codec.base import Codec
from samaudio_jax.config_checks import validate_codec_fields
from samaudio_jax.keymaps.codec import PREFIX, codec_rules
from samaudio_jax.paths import as_path, check_reachable
from samaudio_jax.state_dict_io import read_state_dict

PART_PREFIX = "audio_codec."


class RandomCodecWarning(UserWarning):
    """A DACVAE was built with random weights (config.codec.checkpoint is empty)."""


RANDOM_CODEC_MESSAGE = (
    "config.codec.checkpoint is empty: this DACVAE codec has RANDOM weights, so its latents "
    "(and anything trained or separated through them) are meaningless. Set "
    "--config.codec.checkpoint=RELEASE_DIR (a directory or file holding audio_codec.*), or "
    "load a release/export/workdir with samaudio_jax.load / train --init_from."
)


def build_codec(cfg, *, random_ok: bool = False) -> Codec:
    """`cfg` is config.codec. kind "frames" -> FrameDCTCodec, "dacvae" -> DacVaeCodec.

    A DACVAE loads `cfg.checkpoint` (a release dir or checkpoint file holding audio_codec.*);
    without one it is random and RandomCodecWarning is raised unless random_ok (the caller
    fills the weights itself, e.g. from a loaded checkpoint).
    """
    validate_codec_fields(cfg)  # kind, sizes, and the hop each kind implies
    kind = cfg.kind
    if kind == "frames":
        from samaudio_jax.codec import frames

        scale = None
        if cfg.latent_scale:
            scale = frames.load_latent_scale(cfg.latent_scale, cfg.hop_length)
        return frames.FrameDCTCodec(cfg.sample_rate, cfg.hop_length, latent_scale=scale)
    if kind == "dacvae":
        from samaudio_jax.codec import dacvae

        codec = dacvae.DacVaeCodec(
            sample_rate=cfg.sample_rate,
            encoder_dim=cfg.encoder_dim,
            encoder_rates=tuple(cfg.encoder_rates),
            encoder_hidden_dim=cfg.encoder_hidden_dim,
            latent_dim=cfg.latent_dim,
            decoder_dim=cfg.decoder_dim,
            decoder_rates=tuple(cfg.decoder_rates),
            wm_rates=tuple(cfg.wm_rates),
            wm_msg_dim=cfg.wm_msg_dim,
            watermark=cfg.watermark,
            dtype=cfg.dtype,
            seed=None if cfg.checkpoint else 0,
        )
        if cfg.checkpoint:
            load_codec_checkpoint(codec, cfg.checkpoint)
        elif not random_ok:
            warnings.warn(RANDOM_CODEC_MESSAGE, RandomCodecWarning, stacklevel=2)
        return codec
    raise ValueError(f"codec.kind: expected 'dacvae' or 'frames', got {kind!r}")


def _variables(codec) -> dict[str, nnx.Variable]:
    return {
        ".".join(str(p) for p in path): var for path, var in nnx.to_flat_state(nnx.state(codec))
    }


def _to_numpy(value, key):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":
        raise ValueError(f"audio_codec.{key}: expected floating weights, got dtype {arr.dtype}")
    return arr


def import_codec_state(codec, state_dict) -> None:
    """Copy a release `audio_codec.*` state dict (prefix stripped; numpy arrays or torch
    tensors) into `codec` in place. ValueError listing missing / unexpected keys or the first
    shape mismatch. Values are stored unchanged (bit-exact re-export)."""
    if state_dict and not any(k.startswith(PREFIX) for k in state_dict):
        state_dict = {PREFIX + k: v for k, v in state_dict.items()}
    rules = codec_rules(codec)
    variables = _variables(codec)
    want = {r.release for r in rules}
    missing, extra = sorted(want - set(state_dict)), sorted(set(state_dict) - want)
    if missing or extra:
        raise ValueError(
            f"audio_codec state dict does not match the codec config: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
        )
    for r in rules:
        var = variables[r.ours]
        arr = _to_numpy(state_dict[r.release], r.release)
        if arr.shape != tuple(var.shape):
            raise ValueError(
                f"audio_codec.{r.release}: shape {arr.shape} does not match the codec's "
                f"{tuple(var.shape)} (check codec sizes in the config)"
            )
        var.set_value(jax.device_put(arr))


def export_codec_state(codec) -> dict[str, np.ndarray]:
    """The codec's weights under the release's names (without `audio_codec.`), numpy."""
    variables = _variables(codec)
    return {r.release: np.asarray(variables[r.ours].get_value()) for r in codec_rules(codec)}


def load_codec_checkpoint(codec, path: str) -> None:
    """Load `audio_codec.*` from a release/export directory or a checkpoint file (.pt or
    .safetensors), local or behind a URL."""
    check_reachable(path)  # an unreachable bucket is named, not taken for a missing file
    p = as_path(path)
    try:
        state, file = read_state_dict(p)
    except FileNotFoundError as err:
        raise ValueError(f"codec.checkpoint: {err}") from None
    sub = {k[len(PART_PREFIX) :]: v for k, v in state.items() if k.startswith(PART_PREFIX)}
    if not sub:
        raise ValueError(f"codec.checkpoint: {file!r} holds no audio_codec.* keys")
    import_codec_state(codec, sub)
