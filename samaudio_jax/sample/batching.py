"""Host-side batch preparation for `separate`: length buckets, padding, masks, span anchors,
video features, and noise that does not depend on the batch.

Lengths: an input of N samples has T = ceil(N / hop) latent frames; a batch is padded to
the smallest bucket >= its longest T (buckets: 4 per octave, 16, 20, 24, 28, 32, 40, ...),
text to a multiple of `TEXT_BUCKET` tokens and the batch size to a power of two, so a
handful of compiled shapes serve every input.

Noise: item i of a call gets key `item_keys(key, n)[i] = fold_in(key, i)` (or the caller's
own per-item keys), candidate c of it `fold_in(item key, c)`, and frame t of that candidate
draws `normal(fold_in(candidate key, t), (channels,))`. Noise is therefore a prefix-stable
sequence per item: the same whatever the batch, its position in it or the padded length.
Separating item i alone with `keys=item_keys(key, n)[i:i + 1]` reproduces its noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from samaudio_jax.data.spans import spans_to_anchors, validate_spans

TEXT_BUCKET = 16


def bucket_frames(frames: int, minimum: int = 16) -> int:
    """Smallest length of the form m * 2^k (m in 4..7), at least `minimum`, >= frames."""
    if frames < 1:
        raise ValueError(f"frames: expected a positive count, got {frames}")
    size = minimum
    while size < frames:
        octave = 1 << (size.bit_length() - 3) if size >= 8 else 1
        size += octave
    return size


def bucket_batch(batch: int, multiple: int = 1) -> int:
    """Batch size padded to a power of two, then to a multiple of `multiple` (mesh size)."""
    size = 1 << (batch - 1).bit_length()
    return -(-size // multiple) * multiple


def item_keys(key: jax.Array, count: int) -> jax.Array:
    """Per-item keys (count,): fold_in(key, i)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(count))


def as_item_keys(key, count: int) -> jax.Array:
    """A single PRNG key -> item_keys(key, count); a batch of `count` keys -> itself."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    single = key.ndim == 0 if typed else key.ndim == 1
    if single:
        return item_keys(key, count)
    if key.shape[0] != count:
        raise ValueError(f"key: expected one key or {count} per-item keys, got shape {key.shape}")
    return key


def frame_noise(key: jax.Array, frames: int, channels: int) -> jax.Array:
    """(frames, channels) N(0, 1): frame t from fold_in(key, t), so shorter is a prefix."""
    return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (channels,)))(
        jnp.arange(frames)
    )


def candidate_noise(keys: jax.Array, candidates: int, frames: int, channels: int) -> jax.Array:
    """(B * candidates, frames, channels): candidate c of item b from fold_in(keys[b], c)."""

    def per_item(key):
        return jax.vmap(lambda c: frame_noise(jax.random.fold_in(key, c), frames, channels))(
            jnp.arange(candidates)
        )

    noise = jax.vmap(per_item)(keys)
    return noise.reshape(-1, frames, channels)


@dataclasses.dataclass
class PreparedBatch:
    """Padded host arrays for one call of the jitted separation."""

    waveforms: np.ndarray  # (B, T * hop) float32, zero past each length
    lengths: np.ndarray  # (B,) samples
    frames: np.ndarray  # (B,) valid latent frames
    valid: np.ndarray  # (B, T) bool
    text_ids: np.ndarray | None  # (B, S)
    text_mask: np.ndarray | None  # (B, S) bool
    anchor_ids: np.ndarray  # (B, K) int32
    anchor_alignment: np.ndarray  # (B, T) int32
    video: np.ndarray | None  # (B, Dv, T) float32
    spans: list[list[tuple[str, float, float]]]
    descriptions: list[str]

    @property
    def size(self) -> int:
        return self.waveforms.shape[0]


def pad_text(ids: np.ndarray, mask: np.ndarray, multiple: int = TEXT_BUCKET):
    ids, mask = np.asarray(ids), np.asarray(mask, bool)
    width = max(multiple, -(-ids.shape[1] // multiple) * multiple)
    extra = width - ids.shape[1]
    return np.pad(ids, ((0, 0), (0, extra))), np.pad(mask, ((0, 0), (0, extra)))


def prepare_batch(
    waves: Sequence[np.ndarray],
    descriptions: Sequence[str],
    spans: Sequence[Sequence[tuple[str, float, float]] | None] | None,
    video_features: Sequence[np.ndarray | None] | None,
    *,
    sample_rate: int,
    hop_length: int,
    tokenize=None,
    frames: int | None = None,
) -> PreparedBatch:
    """Pads mono waveforms (at the codec rate) and their prompts into one bucketed batch.

    `tokenize(list[str]) -> (ids, mask)` is the text encoder's; None leaves text out.
    `frames` forces the padded frame count (default: the bucket of the longest input).
    Spans are validated against each input's duration; video features must be
    (Dv, T_i) at the latent frame rate.
    """
    count = len(waves)
    if count == 0:
        raise ValueError("audios: expected at least one input")
    if len(descriptions) != count:
        raise ValueError(f"descriptions: expected one per input ({count}), got {len(descriptions)}")
    spans = list(spans) if spans is not None else [None] * count
    if len(spans) != count:
        raise ValueError(f"spans: expected one span list per input ({count}), got {len(spans)}")
    lengths = np.array([w.shape[0] for w in waves], np.int64)
    item_frames = -(-lengths // hop_length)
    if frames is None:
        frames = bucket_frames(int(item_frames.max()))
    if frames < item_frames.max():
        raise ValueError(f"frames: {frames} is shorter than the longest input")
    waveforms = np.zeros((count, frames * hop_length), np.float32)
    for i, w in enumerate(waves):
        waveforms[i, : w.shape[0]] = w
    valid = np.arange(frames)[None, :] < item_frames[:, None]
    span_lists = []
    for i, s in enumerate(spans):
        s = [tuple(x) for x in (s or ())]
        validate_spans(s, lengths[i] / sample_rate, where=f"spans[{i}]")
        span_lists.append(s)
    anchor_ids, alignment = spans_to_anchors(span_lists, valid, sample_rate, hop_length)
    text_ids = text_mask = None
    if tokenize is not None:
        text_ids, text_mask = pad_text(*tokenize(list(descriptions)))
    video = None
    if video_features is not None and any(v is not None for v in video_features):
        if len(video_features) != count:
            raise ValueError(
                f"video_features: expected one per input ({count}), got {len(video_features)}"
            )
        dims = {np.asarray(v).shape[0] for v in video_features if v is not None}
        if len(dims) != 1:
            raise ValueError(f"video_features: inconsistent feature sizes {sorted(dims)}")
        video = np.zeros((count, dims.pop(), frames), np.float32)
        for i, v in enumerate(video_features):
            if v is None:
                continue
            v = np.asarray(v, np.float32)
            if v.ndim != 2 or v.shape[1] != item_frames[i]:
                raise ValueError(
                    f"video_features[{i}]: expected (features, {item_frames[i]}) at the latent "
                    f"frame rate, got {v.shape}"
                )
            video[i, :, : v.shape[1]] = v
    return PreparedBatch(
        waveforms=waveforms,
        lengths=lengths,
        frames=item_frames,
        valid=valid,
        text_ids=text_ids,
        text_mask=text_mask,
        anchor_ids=anchor_ids.astype(np.int32),
        anchor_alignment=alignment.astype(np.int32),
        video=video,
        spans=span_lists,
        descriptions=list(descriptions),
    )


def pad_batch(batch: PreparedBatch, size: int) -> PreparedBatch:
    """Repeats the last item until the batch has `size` items (results of copies are dropped)."""
    extra = size - batch.size
    if extra <= 0:
        return batch

    def grow(a):
        return None if a is None else np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])

    return dataclasses.replace(
        batch,
        waveforms=grow(batch.waveforms),
        lengths=grow(batch.lengths),
        frames=grow(batch.frames),
        valid=grow(batch.valid),
        text_ids=grow(batch.text_ids),
        text_mask=grow(batch.text_mask),
        anchor_ids=grow(batch.anchor_ids),
        anchor_alignment=grow(batch.anchor_alignment),
        video=grow(batch.video),
        spans=batch.spans + [batch.spans[-1]] * extra,
        descriptions=batch.descriptions + [batch.descriptions[-1]] * extra,
    )
