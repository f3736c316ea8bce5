"""Mixture consistency: make the separated target and residual add up to the mixture.

The flow network estimates the target and the residual independently; nothing forces
target + residual == mixture. Two known fixes, applied after decoding:

- "project" (Wisdom et al., 2019, "Differentiable consistency constraints for improved
  deep speech enhancement"): the orthogonal projection onto {t + r = m}, i.e. each
  estimate gets half of the mismatch, t' = t + (m - t - r) / 2.
- "wiener" / "ratio": the estimates only set a soft mask, which is applied to the
  mixture: per time-frequency bin t' = m * |t|^p / (|t|^p + |r|^p), r' = m - t'. p = 2
  ("wiener") is the Wiener filter, p = 1 ("ratio") a magnitude ratio mask. The bins are the codec's own latent bins
  when the codec is linear (the DCT frames codec: the mask is then in the same domain as
  the eval's ideal-ratio-mask ceiling), else an STFT (Hann^(1/2), 50 % overlap, which
  reconstructs exactly).

"none" returns the estimates unchanged. Everything here is numpy on one item's waveforms.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from samaudio_jax.codec.frames import FrameDCTCodec

MODES = ("none", "project", "ratio", "wiener")
POWERS = {"ratio": 1.0, "wiener": 2.0}
STFT_SIZE = 512
_EPS = 1e-12


def check_mode(mode: str, where: str = "sample.mixture_consistency") -> str:
    if mode not in MODES:
        raise ValueError(f"{where}: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def project(mixture, target, residual):
    """(t', r') with t' + r' == mixture and the smallest change to (t, r)."""
    m, t, r = _as_arrays(mixture, target, residual)
    half = 0.5 * (m - t - r)
    return t + half, r + half


def wiener_mask(target_bins, residual_bins, power: float = 2.0) -> np.ndarray:
    """|t|^p / (|t|^p + |r|^p) per bin, in [0, 1] (0.5 where both are silent)."""
    a = np.abs(np.asarray(target_bins)).astype(np.float64) ** power
    b = np.abs(np.asarray(residual_bins)).astype(np.float64) ** power
    return (a + 0.5 * _EPS) / (a + b + _EPS)


def wiener(mixture, target, residual, codec=None, power: float = 2.0):
    """(t', r'): the mixture masked by the estimates' ratio (see the module docstring)."""
    m, t, r = _as_arrays(mixture, target, residual)
    n = m.shape[-1]
    if isinstance(codec, FrameDCTCodec):
        # The codec's own bins; a per-bin latent scale cancels in the mask and in decode.
        bins = np.asarray(codec.encode(jnp.asarray(np.stack([m, t, r]))), np.float64)
        mask = wiener_mask(bins[1], bins[2], power)
        est = codec.decode(jnp.asarray((bins[0] * mask)[None], jnp.float32))
        est = np.asarray(est, np.float64)[0, :n]
    else:
        spec = [_stft(x) for x in (m, t, r)]
        mask = wiener_mask(spec[1], spec[2], power)
        est = _istft(spec[0] * mask, n)
    est = est.astype(np.float32)
    return est, (m - est).astype(np.float32)


def apply(mode: str, mixture, target, residual, codec=None):
    """(t', r') by mode name: "none", "project", "ratio" (p = 1) or "wiener" (p = 2)."""
    check_mode(mode)
    if mode == "none":
        m, t, r = _as_arrays(mixture, target, residual)
        return t, r
    if mode == "project":
        return project(mixture, target, residual)
    return wiener(mixture, target, residual, codec, POWERS[mode])


def apply_to_result(result, mixtures, mode: str, codec=None):
    """`separate`'s SeparationResult with every (target, residual) pair made consistent
    with its mixture waveform (mixtures: the inputs at the codec's rate); `result` is
    returned unchanged for "none"."""
    if check_mode(mode) == "none":
        return result
    pairs = [
        apply(mode, m, t, r, codec) for m, t, r in zip(mixtures, result.target, result.residual)
    ]
    result.target = [p[0] for p in pairs]
    result.residual = [p[1] for p in pairs]
    return result


def _as_arrays(mixture, target, residual):
    m = np.asarray(mixture, np.float32)
    t = np.asarray(target, np.float32)[: m.shape[-1]]
    r = np.asarray(residual, np.float32)[: m.shape[-1]]
    if m.ndim != 1 or t.shape != m.shape or r.shape != m.shape:
        raise ValueError(
            f"mixture consistency: expected 1-D waveforms of one length, got mixture "
            f"{m.shape}, target {t.shape}, residual {r.shape}"
        )
    return m, t, r


def _window():
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(STFT_SIZE) / STFT_SIZE))


def _stft(x):
    hop = STFT_SIZE // 2
    padded = np.pad(x.astype(np.float64), (hop, hop + (-x.shape[0]) % hop))
    count = (padded.shape[0] - STFT_SIZE) // hop + 1
    idx = np.arange(STFT_SIZE)[None, :] + hop * np.arange(count)[:, None]
    return np.fft.rfft(padded[idx] * _window(), axis=-1)


def _istft(spec, n):
    hop = STFT_SIZE // 2
    frames = np.fft.irfft(spec, STFT_SIZE, axis=-1) * _window()
    out = np.zeros(hop * (frames.shape[0] + 1))
    for i, f in enumerate(frames):
        out[i * hop : i * hop + STFT_SIZE] += f
    return out[hop : hop + n]
