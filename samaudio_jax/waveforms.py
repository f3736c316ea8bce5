"""Waveform arrays as every audio input path takes them: one numeric array, (samples,) or
(channels, samples), averaged to float32 mono, with a one-line error naming `where`."""

from __future__ import annotations

import numpy as np


def to_mono(wav: np.ndarray, where: str) -> np.ndarray:
    """(samples,) or (channels, samples) -> (samples,) float32."""
    wav = np.asarray(wav)
    if wav.dtype.kind not in "fiu":
        raise ValueError(f"{where}: expected a numeric waveform, got dtype {wav.dtype}")
    if wav.ndim == 2:
        wav = wav.astype(np.float64).mean(axis=0)
    elif wav.ndim != 1:
        raise ValueError(
            f"{where}: expected shape (samples,) or (channels, samples), got {wav.shape}"
        )
    return wav.astype(np.float32)
