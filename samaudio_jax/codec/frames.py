"""An exactly invertible analytic codec: non-overlapping orthonormal DCT-II frames.

The waveform is zero-padded to T * hop samples (T = ceil(N / hop)), cut into T frames of
`hop` samples, and each frame is replaced by its orthonormal DCT-II coefficients
(latent_dim = hop). Optionally every coefficient bin is divided by a fixed per-bin RMS
measured on training mixtures (`measure_latent_scale`), so latents have roughly unit
scale per bin; store it with `save_latent_scale` (a .npy file) and point
`config.codec.latent_scale` at it, or set it to "auto" and `train` measures it on the
training split (samaudio_jax/train/latent_scale.py). Decoding multiplies the scale back and applies the
transposed (= inverse) DCT matrix, so decode(encode(x))[:, :N] == x up to float rounding.

The demo recipe that learned well: 8 kHz, hop 128 (64 tokens x 128 per ~1 s), scaled.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from samaudio_jax.codec.base import Codec, CodecWeight, check_waveform
from samaudio_jax.io_atomic import atomic_write_stream
from samaudio_jax.paths import as_path

_HIGHEST = jax.lax.Precision.HIGHEST


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix D (n, n) in float64: coefficients = D @ frame."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (i + 0.5) * k / n) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


class FrameDCTCodec(Codec):
    """Non-overlapping orthonormal DCT-II frames of `hop_length` samples."""

    def __init__(self, sample_rate: int, hop_length: int, latent_scale=None):
        if hop_length < 1:
            raise ValueError(f"hop_length: expected a positive integer, got {hop_length}")
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.latent_dim = int(hop_length)
        # basis[i, k] = D[k, i]: frames (.., hop) @ basis -> coefficients (.., hop).
        self.basis = CodecWeight(jnp.asarray(dct_matrix(hop_length).T, jnp.float32))
        scale = np.ones(hop_length, np.float32) if latent_scale is None else latent_scale
        self.scale = CodecWeight(jnp.asarray(_checked_scale(scale, hop_length, "latent_scale")))

    def frame(self, wav: jax.Array) -> jax.Array:
        """(B, N) -> (B, T, hop), zero-padded at the end."""
        b, n = wav.shape
        t = self.num_frames(n)
        wav = jnp.pad(wav, ((0, 0), (0, t * self.hop_length - n)))
        return wav.reshape(b, t, self.hop_length)

    def encode(self, wav: jax.Array, num_samples: jax.Array | None = None) -> jax.Array:
        wav = wav.astype(jnp.float32)
        if num_samples is not None:
            wav = wav * (jnp.arange(wav.shape[1])[None, :] < jnp.asarray(num_samples)[:, None])
        frames = self.frame(wav)
        coeffs = jnp.matmul(frames, self.basis[...], precision=_HIGHEST)
        return coeffs / self.scale[...]

    def decode(self, latents: jax.Array, num_frames: jax.Array | None = None) -> jax.Array:
        coeffs = latents.astype(jnp.float32) * self.scale[...]
        if num_frames is not None:
            valid = jnp.arange(coeffs.shape[1])[None, :] < jnp.asarray(num_frames)[:, None]
            coeffs = coeffs * valid[..., None]
        frames = jnp.matmul(coeffs, self.basis[...].T, precision=_HIGHEST)
        b, t, _ = frames.shape
        return frames.reshape(b, t * self.hop_length)


def _checked_scale(scale, hop_length: int, name: str) -> np.ndarray:
    arr = np.asarray(scale, np.float32)
    if arr.shape != (hop_length,):
        raise ValueError(
            f"{name}: expected shape ({hop_length},) (one RMS per bin), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: per-bin scales must be finite and > 0")
    return arr


def measure_latent_scale(
    wavs: Iterable, hop_length: int, floor: float = 1e-4, sample_rate: int = 0
) -> np.ndarray:
    """Per-bin RMS of the unscaled DCT coefficients over all frames of `wavs`.

    `wavs` yields (B, N) or (N,) waveforms (e.g. training mixtures). Bins whose RMS falls
    under `floor` times the largest bin's RMS are raised to that, so no bin is divided by
    ~0. Returns float32 (hop_length,).
    """
    codec = FrameDCTCodec(sample_rate or 1, hop_length)
    total = np.zeros(hop_length, np.float64)
    count = 0
    for i, wav in enumerate(wavs):
        arr = np.asarray(wav)
        arr = arr[None] if arr.ndim == 1 else arr
        arr = check_waveform(arr, name=f"wavs[{i}]")
        coeffs = np.asarray(codec.encode(jnp.asarray(arr)), np.float64)
        total += (coeffs**2).reshape(-1, hop_length).sum(0)
        count += coeffs.shape[0] * coeffs.shape[1]
    if count == 0:
        raise ValueError("wavs: no waveforms given to measure the latent scale on")
    rms = np.sqrt(total / count)
    if rms.max() <= 0:
        raise ValueError("wavs: all waveforms are silent; cannot measure a latent scale")
    return np.maximum(rms, floor * rms.max()).astype(np.float32)


def save_latent_scale(path: str, scale: np.ndarray) -> None:
    """Write the per-bin scale to a .npy file atomically (temp name + rename)."""
    arr = np.asarray(scale, np.float32)
    _checked_scale(arr, arr.shape[0] if arr.ndim == 1 else -1, "scale")
    as_path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_stream(path, lambda f: np.save(f, arr))


def load_latent_scale(path: str, hop_length: int) -> np.ndarray:
    """Read a per-bin scale saved by `save_latent_scale`; checks it matches hop_length."""
    if str(path) in ("auto", "auto_global"):
        raise ValueError(
            f"codec.latent_scale: {path!r} is measured by `train` (WORKDIR/latent_scale.npy); "
            "read the model from that workdir or name the .npy file"
        )
    if not as_path(path).is_file():
        raise ValueError(f"codec.latent_scale: no such file {path!r}")
    with as_path(path).open("rb") as f:
        scale = np.load(f)
    return _checked_scale(scale, hop_length, f"codec.latent_scale ({path})")
