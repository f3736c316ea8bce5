"""Separating audio longer than the model's segment: overlapping chunks, cross-faded.

The input is cut into chunks of `chunk` samples that overlap by at least `overlap` samples,
spaced evenly so the last chunk ends exactly at the input's end: every chunk has the same
length (one compiled shape) unless the input is shorter than one chunk. Each chunk is separated on
its own with its spans shifted into the chunk's local time (spans that miss the chunk are
dropped, spans that cross its edge are clipped). Results are blended across a seam
`overlap` samples wide in the middle of each overlap with complementary raised-cosine
ramps, so the weights form a partition of unity: where chunks agree the output equals them,
and the output is continuous at every seam. The output has exactly the input's length.

Memory: chunks are separated `chunks_per_call` at a time and accumulated into the output,
so device memory is bounded by one call's batch whatever the input length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Span = tuple[str, float, float]
# separate_chunks(chunks (n, chunk), spans per chunk, first chunk index) -> (target, residual)
ChunkSeparator = Callable[[np.ndarray, list[list[Span]], int], tuple[np.ndarray, np.ndarray]]


def chunk_starts(length: int, chunk: int, overlap: int) -> list[int]:
    """Start samples of chunks covering [0, length): the fewest chunks that overlap by at
    least `overlap`, spaced evenly so the last one ends exactly at `length`."""
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive number of samples, got {chunk}")
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap: expected 0 <= overlap < chunk ({chunk}), got {overlap}")
    if length <= chunk:
        return [0]
    gaps = -(-(length - chunk) // (chunk - overlap))
    return [round(i * (length - chunk) / gaps) for i in range(gaps + 1)]


def chunk_weights(starts: Sequence[int], chunk: int, overlap: int, length: int) -> np.ndarray:
    """(n, chunk) blend weights. Each seam is centred in the overlap of two neighbouring
    chunks and `overlap` samples wide (narrower only if seams would otherwise touch); across
    it one chunk fades out as cos^2 while the next fades in as sin^2, so the weights of all
    chunks sum to exactly 1 everywhere."""
    n = len(starts)
    size = min(chunk, length)
    weights = np.ones((n, size), np.float64)
    if n == 1 or overlap == 0:
        if n > 1:  # no overlap: hard cuts at the next chunk's start
            for i in range(n - 1):
                weights[i, starts[i + 1] - starts[i] :] = 0.0
        return weights
    spacing = min(b - a for a, b in zip(starts[:-1], starts[1:]))
    width = min(overlap, spacing)
    for i in range(n - 1):
        middle = 0.5 * (starts[i + 1] + starts[i] + size)
        lo = middle - 0.5 * width
        for j, sign in ((i, 0), (i + 1, 1)):
            position = np.arange(size) + starts[j]
            ramp = np.clip((position - lo + 0.5) / width, 0.0, 1.0)
            fade = np.sin(0.5 * np.pi * ramp) ** 2
            weights[j] *= fade if sign else 1.0 - fade
    return weights


def spans_in_chunk(spans: Sequence[Span], start_s: float, duration_s: float) -> list[Span]:
    """Spans shifted to a chunk's local time; spans missing it dropped, crossing ones clipped."""
    out = []
    for sign, lo, hi in spans:
        lo_local, hi_local = max(lo - start_s, 0.0), min(hi - start_s, duration_s)
        if hi_local > lo_local:
            out.append((sign, lo_local, hi_local))
    return out


def separate_long(
    separate_chunks: ChunkSeparator,
    audio: np.ndarray,
    spans: Sequence[Span] | None,
    *,
    sample_rate: int,
    chunk_seconds: float,
    overlap_seconds: float,
    chunks_per_call: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Separates one long mono waveform chunk by chunk; returns (target, residual) (N,).

    `separate_chunks(chunks, chunk_spans, first_index)` separates a (n, chunk) batch; the
    chunk index lets it draw each chunk's noise independently of how chunks are grouped.
    `progress(done, total)` is called after each call.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio: expected a non-empty mono waveform (N,), got {audio.shape}")
    if chunks_per_call < 1:
        raise ValueError(f"chunks_per_call: expected >= 1, got {chunks_per_call}")
    chunk = int(round(chunk_seconds * sample_rate))
    overlap = int(round(overlap_seconds * sample_rate))
    length = audio.shape[0]
    starts = chunk_starts(length, chunk, overlap)
    weights = chunk_weights(starts, chunk, overlap, length)
    size = weights.shape[1]
    target = np.zeros(length, np.float64)
    residual = np.zeros(length, np.float64)
    total = np.zeros(length, np.float64)
    for first in range(0, len(starts), chunks_per_call):
        group = starts[first : first + chunks_per_call]
        chunks = np.stack([audio[s : s + size] for s in group])
        local = [spans_in_chunk(spans or (), s / sample_rate, size / sample_rate) for s in group]
        tgt, res = separate_chunks(chunks, local, first)
        tgt, res = np.asarray(tgt), np.asarray(res)
        if tgt.shape != chunks.shape or res.shape != chunks.shape:
            raise ValueError(
                f"separate_chunks returned {tgt.shape} / {res.shape}, expected {chunks.shape}"
            )
        for j, s in enumerate(group):
            w = weights[first + j]
            target[s : s + size] += w * tgt[j]
            residual[s : s + size] += w * res[j]
            total[s : s + size] += w
        if progress is not None:
            progress(min(first + chunks_per_call, len(starts)), len(starts))
    return (target / total).astype(np.float32), (residual / total).astype(np.float32)
