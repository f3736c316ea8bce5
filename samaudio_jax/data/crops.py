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

import dataclasses
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


def crop_candidates(
    num_samples: int,
    length: int,
    *,
    spans: Sequence[Sequence[float]] | None,
    sample_rate: int,
    min_fraction: float,
    step: int = 1,
) -> int | CropRuns:
    """The offsets a crop may start at: an int `count` when every offset step * [0, count)
    qualifies (the plain uniform crop), else the runs of qualifying offsets (CropRuns). Depends on
    the record only, so the pipeline computes it once per record; `draw_offset` then costs
    one rng call. `spans` is only read when min_fraction > 0 and the record is longer than
    the segment."""
    if num_samples < length:
        return 1
    count = (num_samples - length) // step + 1
    if min_fraction <= 0 or spans is None:
        return count
    mask = active_mask(spans, num_samples, sample_rate)
    csum = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    offsets = np.arange(count, dtype=np.int64) * step
    fraction = (csum[offsets + length] - csum[offsets]) / float(length)
    good = fraction >= min_fraction - 1e-9
    if not good.any():  # no segment reaches the fraction: take the most active ones
        good = fraction >= fraction.max() - 1e-9
    if good.all():
        return count
    # Runs of qualifying offsets (a few per record, however long): kept per record by the
    # pipeline instead of one entry per offset.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    return CropRuns(starts * step, np.cumsum(ends - starts), step)


@dataclasses.dataclass(frozen=True)
class CropRuns:
    """Qualifying crop offsets as runs: run r holds offsets starts[r] + step * [0, n_r),
    with cumulative counts `ends` (n_0, n_0 + n_1, ...)."""

    starts: np.ndarray
    ends: np.ndarray
    step: int

    def offset(self, k: int) -> int:
        """The k-th qualifying offset, in increasing order."""
        r = int(np.searchsorted(self.ends, k, side="right"))
        before = int(self.ends[r - 1]) if r else 0
        return int(self.starts[r]) + self.step * (k - before)


def draw_offset(candidates, rng: np.random.Generator, step: int = 1) -> int:
    """One offset drawn uniformly from `crop_candidates`' answer (one rng call either way)."""
    if isinstance(candidates, CropRuns):
        return candidates.offset(int(rng.integers(int(candidates.ends[-1]))))
    return step * int(rng.integers(candidates))


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
    """A crop offset (a multiple of `step`) for a segment of `length` samples."""
    if num_samples < length:
        return 0
    candidates = crop_candidates(
        num_samples,
        length,
        spans=spans,
        sample_rate=sample_rate,
        min_fraction=min_fraction,
        step=step,
    )
    return draw_offset(candidates, rng, step)
