"""Crops that hold the target: pick a segment offset where the sound is active.

A random crop of a long, mostly silent recording (a door knock in 8 s of room tone) is
often all silence: the model learns nothing from it, and a held-out mixture built on it
scores noise. `active_crop_offset` draws the offset uniformly among those whose segment is
at least `min_fraction` active, using the record's activity spans (the manifest's `spans`
when it has them, else the same `activity_spans` the pipeline uses for span prompts,
measured on the whole record). When no offset reaches the fraction, the most active
offsets are the candidates. With min_fraction 0, or when every offset qualifies, the draw
is exactly the plain uniform crop's (the same rng call), so fully active data crops as
before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samaudio_jax.data.mixing import activity_spans


def active_mask(spans: Sequence[Sequence[float]], num_samples: int, sample_rate: int):
    """(num_samples,) bool: True inside any (start_s, end_s) span."""
    mask = np.zeros(num_samples, bool)
    for start, end in spans:
        lo = max(0, int(round(float(start) * sample_rate)))
        hi = min(num_samples, int(round(float(end) * sample_rate)))
        if hi > lo:
            mask[lo:hi] = True
    return mask


def record_activity(
    audio: np.ndarray, sample_rate: int, spans=None, threshold_db: float = -35.0
) -> list[tuple[float, float]]:
    """The record's active spans: the given ones, else measured on the whole record."""
    if spans:
        return [(float(s), float(e)) for s, e in spans]
    return activity_spans(np.asarray(audio, np.float32), sample_rate, threshold_db=threshold_db)


def active_fraction(spans, offset: int, length: int, num_samples: int, rate: int) -> float:
    """Fraction of samples [offset, offset + length) inside the spans."""
    mask = active_mask(spans, num_samples, rate)[offset : offset + length]
    return float(mask.mean()) if len(mask) else 0.0


def active_crop_offset(
    num_samples: int,
    length: int,
    rng: np.random.Generator,
    *,
    spans: Sequence[Sequence[float]] | None,
    sample_rate: int,
    min_fraction: float,
    step: int = 1,
) -> int:
    """A crop offset (a multiple of `step`) for a segment of `length` samples.

    `spans` is only read when min_fraction > 0 and the record is longer than the segment.
    """
    if num_samples < length:
        return 0
    count = (num_samples - length) // step + 1
    if min_fraction <= 0 or spans is None:
        return step * int(rng.integers(count))
    mask = active_mask(spans, num_samples, sample_rate)
    csum = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    offsets = np.arange(count, dtype=np.int64) * step
    fraction = (csum[offsets + length] - csum[offsets]) / float(length)
    ok = np.flatnonzero(fraction >= min_fraction - 1e-9)
    if len(ok) == 0:  # no segment reaches the fraction: take the most active ones
        ok = np.flatnonzero(fraction >= fraction.max() - 1e-9)
    return int(offsets[ok[int(rng.integers(len(ok)))]])
