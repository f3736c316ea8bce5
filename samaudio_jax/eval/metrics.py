"""Separation metrics on waveforms: SI-SDR, its improvement over the mixture, and SDR.

SDR here is the plain signal-to-distortion ratio 10 log10(|s|^2 / |s - s_hat|^2) used by
the Music Demixing Challenge (no BSS-Eval distortion filter). SI-SDR projects the estimate
onto the zero-mean reference first (Le Roux et al., 2019). All functions take (..., N)
arrays and an optional boolean mask of valid samples, and return one value per leading index.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-8


def _masked(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if mask is None else np.where(mask, x, 0.0)


def _check(reference: np.ndarray, estimate: np.ndarray) -> None:
    if np.shape(reference) != np.shape(estimate):
        raise ValueError(
            f"reference shape {np.shape(reference)} != estimate shape {np.shape(estimate)}"
        )


def si_sdr(reference, estimate, mask=None) -> np.ndarray:
    """Scale-invariant SDR in dB over the last axis (zero-mean over valid samples)."""
    _check(reference, estimate)
    ref, est = _masked(reference, mask), _masked(estimate, mask)
    count = ref.shape[-1] if mask is None else np.maximum(np.sum(mask, axis=-1, keepdims=True), 1)
    ref = _masked(ref - np.sum(ref, -1, keepdims=True) / count, mask)
    est = _masked(est - np.sum(est, -1, keepdims=True) / count, mask)
    scale = np.sum(est * ref, -1, keepdims=True) / (np.sum(ref * ref, -1, keepdims=True) + EPS)
    target = scale * ref
    noise = est - target
    return 10 * np.log10((np.sum(target**2, -1) + EPS) / (np.sum(noise**2, -1) + EPS))


def sdr(reference, estimate, mask=None) -> np.ndarray:
    """Plain SDR in dB over the last axis."""
    _check(reference, estimate)
    ref, est = _masked(reference, mask), _masked(estimate, mask)
    return 10 * np.log10((np.sum(ref**2, -1) + EPS) / (np.sum((ref - est) ** 2, -1) + EPS))


def si_sdr_improvement(reference, estimate, mixture, mask=None) -> np.ndarray:
    """SI-SDR of the estimate minus SI-SDR of the unprocessed mixture."""
    return si_sdr(reference, estimate, mask) - si_sdr(reference, mixture, mask)
