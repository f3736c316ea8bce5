"""Mixing a target with other sources at chosen SNRs, and span prompts from target activity.

Loudness is RMS over the clip (dBFS re full scale 1.0), not LUFS. The target is brought to
`target_rms_db`; each other source k is scaled so that 10 log10(P_target / P_k) = snr_db[k].
If any of mixture, target or residual would exceed `headroom`, all are scaled down together
(SNRs unchanged). The residual is defined as mixture - target in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samaudio_jax.data.spans import spans_to_array

SILENCE_POWER = 1e-10


def power(x: np.ndarray) -> float:
    """Mean square; float32 dot products (BLAS), plenty for SNRs to 1e-3 dB."""
    x = np.asarray(x, np.float32)
    return float(np.dot(x, x)) / x.size if x.size else 0.0


def _peak(x: np.ndarray) -> float:
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def mix_sources(
    target: np.ndarray,
    others: Sequence[np.ndarray],
    snr_db: Sequence[float],
    target_rms_db: float = -20.0,
    headroom: float = 0.99,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixture, target, residual), float32, all of target's length; others are cut or
    zero-padded to it. Silent sources are left unscaled."""
    target = np.array(target, np.float32)
    length = target.shape[0]
    p_target = power(target)
    if p_target > SILENCE_POWER:
        target *= np.float32(10.0 ** (target_rms_db / 20.0) / np.sqrt(p_target))
        p_target = power(target)
    rest = np.zeros(length, np.float32)
    for other, snr in zip(others, snr_db, strict=True):
        o = np.asarray(other[:length], np.float32)
        p_other = power(o) * len(o) / max(length, 1)
        gain = 1.0
        if p_other > SILENCE_POWER and p_target > SILENCE_POWER:
            gain = np.sqrt(p_target / (p_other * 10.0 ** (snr / 10.0)))
        rest[: len(o)] += np.float32(gain) * o
    mixture = target + rest
    peak = max(_peak(mixture), _peak(target), _peak(rest))
    if peak > headroom:
        scale = np.float32(headroom / peak)
        target *= scale
        rest *= scale
        mixture = target + rest
    return mixture, target, mixture - target


def activity_spans(
    audio: np.ndarray,
    sample_rate: int,
    frame_seconds: float = 0.02,
    threshold_db: float = -35.0,
    floor_db: float = -60.0,
    min_gap_seconds: float = 0.1,
) -> list[tuple[float, float]]:
    """Where `audio` is active: frames whose RMS is within `threshold_db` of the loudest
    frame and above `floor_db` dBFS, with gaps shorter than `min_gap_seconds` bridged."""
    hop = max(1, int(round(frame_seconds * sample_rate)))
    frames = len(audio) // hop
    if frames == 0:
        return []
    energy = np.mean(np.square(audio[: frames * hop].reshape(frames, hop), dtype=np.float64), 1)
    level = 10.0 * np.log10(energy + 1e-20)
    active = level > max(level.max() + threshold_db, floor_db)
    spans: list[list[int]] = []
    min_gap = int(np.ceil(min_gap_seconds / frame_seconds))
    for f in np.flatnonzero(active):
        if spans and f - spans[-1][1] <= min_gap:
            spans[-1][1] = f + 1
        else:
            spans.append([f, f + 1])
    return [(lo * hop / sample_rate, hi * hop / sample_rate) for lo, hi in spans]


def shift_spans(
    spans: Sequence[Sequence[float]], offset_s: float, duration_s: float
) -> list[tuple[float, float]]:
    """Spans of a file moved into a crop starting at offset_s of length duration_s."""
    out = []
    for start, end in spans:
        lo, hi = max(start - offset_s, 0.0), min(end - offset_s, duration_s)
        if hi > lo:
            out.append((lo, hi))
    return out


def inactive_gaps(
    spans: Sequence[tuple[float, float]], duration_s: float, min_seconds: float
) -> list[tuple[float, float]]:
    gaps, cursor = [], 0.0
    for start, end in sorted(spans):
        if start - cursor >= min_seconds:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if duration_s - cursor >= min_seconds:
        gaps.append((cursor, duration_s))
    return gaps


def span_prompt(
    positive: Sequence[tuple[float, float]],
    duration_s: float,
    max_spans: int,
    negative_prob: float,
    rng: np.random.Generator,
    min_negative_seconds: float = 0.1,
) -> np.ndarray:
    """(max_spans, 3) array: "+" on the longest active spans (in time order) and, with
    probability negative_prob, one "-" on a random inactive gap."""
    negative = []
    if rng.random() < negative_prob:
        gaps = inactive_gaps(positive, duration_s, min_negative_seconds)
        if gaps:
            negative = [gaps[int(rng.integers(len(gaps)))]]
    room = max_spans - len(negative)
    chosen = sorted(sorted(positive, key=lambda s: s[0] - s[1])[:room])
    spans = [("+", s, e) for s, e in chosen] + [("-", s, e) for s, e in negative]
    return spans_to_array(spans, max_spans)
