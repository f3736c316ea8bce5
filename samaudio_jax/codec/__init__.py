"""Audio codecs behind one interface: DACVAE (the release's) and an analytic frame codec."""

from samaudio_jax.codec.base import (
    Codec,
    CodecWeight,
    check_latents,
    check_waveform,
    frame_mask,
    jit_method,
)
from samaudio_jax.codec.factory import build_codec

__all__ = [
    "Codec",
    "CodecWeight",
    "build_codec",
    "check_latents",
    "check_waveform",
    "frame_mask",
    "jit_method",
]
