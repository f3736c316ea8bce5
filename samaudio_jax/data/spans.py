"""Time-span prompts ("anchors") as the release encodes them for the flow network.

Vocabulary: <null> = 0, "+" = 1, "-" = 2, <pad> = 3. Per example
anchor_ids = [<null>, <pad>, token_1, token_2, ...] and anchor_alignment[b, frame] indexes
into that row: 0 by default, 1 on padded frames, 2 + k inside span k. Span k covers the
latent frames [ceil(int(start * rate) / hop), ceil(int(end * rate) / hop)), as the release.

Two forms: `spans_to_anchors` takes Python lists of ("+"/"-", start_s, end_s) (the API and
CLI); `span_array_to_anchors` takes a fixed-size float array (B, K, 3) of
(code, start_s, end_s) with code 0 = unused, 1 = "+", 2 = "-" and runs under jit (training
batches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

ANCHOR_VOCAB = {"<null>": 0, "+": 1, "-": 2, "<pad>": 3}
NULL, POSITIVE, NEGATIVE, PAD = 0, 1, 2, 3
Span = tuple[str, float, float]


def seconds_to_frame(seconds: float, sample_rate: int, hop_length: int) -> int:
    """Latent frame index of a time, as the release computes it: ceil(int(s * rate) / hop)."""
    return math.ceil(int(seconds * sample_rate) / hop_length)


def validate_spans(
    spans: Sequence[Span], duration_s: float | None = None, where: str = "spans"
) -> None:
    """Raises ValueError naming the span when a sign, order or range is wrong."""
    for k, span in enumerate(spans):
        if len(span) != 3:
            raise ValueError(f"{where}[{k}]: expected (sign, start_s, end_s), got {span!r}")
        sign, start, end = span
        if sign not in ("+", "-"):
            raise ValueError(f"{where}[{k}]: sign must be '+' or '-', got {sign!r}")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{where}[{k}]: start and end must be finite, got {start}, {end}")
        if start < 0:
            raise ValueError(f"{where}[{k}]: start {start} s is before the audio begins")
        if start >= end:
            raise ValueError(f"{where}[{k}]: start {start} s must be before end {end} s")
        if duration_s is not None and end > duration_s + 1e-9:
            raise ValueError(
                f"{where}[{k}]: end {end} s is past the audio's end ({duration_s:.3f} s)"
            )


def spans_to_anchors(
    spans: Sequence[Sequence[Span] | None],
    valid: np.ndarray,
    sample_rate: int,
    hop_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """anchor_ids (B, 2 + max spans) and anchor_alignment (B, T) from per-example span lists.

    `valid` is the (B, T) audio padding mask at the latent frame rate (True = real frame).
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2 or len(spans) != valid.shape[0]:
        raise ValueError(
            f"spans: expected one span list per example ({valid.shape[0]}), got {len(spans)}"
        )
    batch, frames = valid.shape
    alignment = np.where(valid, 0, 1).astype(np.int32)
    rows = []
    for b, example in enumerate(spans):
        row = [NULL, PAD]
        for sign, start, end in example or ():
            lo = seconds_to_frame(start, sample_rate, hop_length)
            hi = min(seconds_to_frame(end, sample_rate, hop_length), frames)
            alignment[b, lo:hi] = len(row)
            row.append(ANCHOR_VOCAB[sign])
        rows.append(row)
    width = max(len(r) for r in rows)
    ids = np.full((batch, width), PAD, dtype=np.int32)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = row
    return ids, alignment


def spans_to_array(spans: Sequence[Span], max_spans: int) -> np.ndarray:
    """One example's span list as the fixed (max_spans, 3) float array of (code, start, end)."""
    if len(spans) > max_spans:
        raise ValueError(f"spans: {len(spans)} spans given, at most {max_spans} fit")
    out = np.zeros((max_spans, 3), dtype=np.float32)
    for k, (sign, start, end) in enumerate(spans):
        out[k] = (ANCHOR_VOCAB[sign], start, end)
    return out


def span_array_to_anchors(span_array, valid, sample_rate: int, hop_length: int):
    """Jittable: (B, K, 3) span array and (B, T) mask -> anchor_ids (B, 2 + K), alignment (B, T).

    Unused slots (code 0) become <pad> ids that no frame points at; later spans overwrite
    earlier ones where they overlap, as in `spans_to_anchors`.
    """
    span_array = jnp.asarray(span_array)
    batch, num_spans, _ = span_array.shape
    frames = valid.shape[1]
    code = span_array[..., 0].astype(jnp.int32)
    start = jnp.floor(span_array[..., 1] * sample_rate).astype(jnp.int32)
    end = jnp.floor(span_array[..., 2] * sample_rate).astype(jnp.int32)
    lo = (start + hop_length - 1) // hop_length
    hi = jnp.minimum((end + hop_length - 1) // hop_length, frames)
    used = code > 0
    ids = jnp.concatenate(
        [
            jnp.full((batch, 1), NULL, jnp.int32),
            jnp.full((batch, 1), PAD, jnp.int32),
            jnp.where(used, code, PAD),
        ],
        axis=1,
    )
    alignment = jnp.where(valid, 0, 1).astype(jnp.int32)
    frame = jnp.arange(frames)[None, :]
    for k in range(num_spans):
        inside = used[:, k : k + 1] & (frame >= lo[:, k : k + 1]) & (frame < hi[:, k : k + 1])
        alignment = jnp.where(inside, 2 + k, alignment)
    return ids, alignment
