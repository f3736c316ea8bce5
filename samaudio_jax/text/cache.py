"""Text features computed once per distinct description.

`TextFeatureCache` wraps an encoder for sampling: each distinct string is encoded once per
run (strings not yet seen in a call are encoded together in one batch), and batches are
reassembled from the stored per-string features with the encoder's own padding rule.
`precompute_text_features` encodes a list of descriptions offline (e.g. T5 for a large
run) into per-description (num_tokens, dim) arrays to store in data shards;
`stack_text_features` pads such arrays back into (features, mask) batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from samaudio_jax.text.base import TextEncoder, check_texts, padded_length


def make_encode_fn(encoder: TextEncoder) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A jitted host function (ids, mask) -> features as numpy float32."""
    graphdef, state = nnx.split(encoder)

    @jax.jit
    def run(state, ids, mask):
        return nnx.merge(graphdef, state)(ids, mask)

    return lambda ids, mask: np.asarray(run(state, ids, mask))


def stack_text_features(
    rows: Sequence[np.ndarray], *, bucket_length: int = 0, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pads per-description (n_i, dim) arrays into features (B, S, dim) and mask (B, S)."""
    if not rows:
        raise ValueError("rows: expected at least one feature array")
    for i, r in enumerate(rows):
        if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] != rows[0].shape[1]:
            raise ValueError(
                f"rows[{i}]: expected shape (n >= 1, {rows[0].shape[1]}), got {r.shape}"
            )
    longest = max(r.shape[0] for r in rows)
    length = padded_length(longest, bucket_length=bucket_length, max_length=max_length)
    features = np.zeros((len(rows), length, rows[0].shape[1]), dtype=rows[0].dtype)
    mask = np.zeros((len(rows), length), dtype=np.bool_)
    for i, r in enumerate(rows):
        features[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return features, mask


class TextFeatureCache:
    """Per-run memo of the valid-token features of each distinct description."""

    def __init__(self, encoder: TextEncoder, *, max_entries: int = 0, encode_fn=None):
        self.encoder = encoder
        self.max_entries = max_entries  # 0 = unbounded; else least recently used evicted
        self._encode = encode_fn or make_encode_fn(encoder)
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()
        self.encoder_calls = 0  # batches sent to the encoder
        self.encoded_texts = 0  # strings encoded (misses)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, text: str) -> bool:
        return text in self._store

    def lookup(self, texts: Sequence[str]) -> list[np.ndarray]:
        """(n_i, dim) float32 features per string; encodes the unseen ones in one batch."""
        texts = check_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._store))
        found = {t: self._store[t] for t in texts if t in self._store}
        if missing:
            ids, mask = self.encoder.tokenize(missing)
            features = self._encode(ids, mask)
            self.encoder_calls += 1
            self.encoded_texts += len(missing)
            for i, t in enumerate(missing):
                found[t] = np.array(features[i][mask[i]], dtype=np.float32)
        for t in texts:
            self._store[t] = found[t]
            self._store.move_to_end(t)
        while self.max_entries and len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return [found[t] for t in texts]

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Same (features (B, S, dim), mask (B, S)) as encoder.encode, from the cache."""
        return stack_text_features(
            self.lookup(texts),
            bucket_length=self.encoder.bucket_length,
            max_length=self.encoder.max_length,
        )


def precompute_text_features(
    encoder: TextEncoder,
    descriptions: Sequence[str],
    *,
    batch_size: int = 64,
    dtype=np.float32,
) -> list[np.ndarray]:
    """(n_i, dim) features per description, each distinct description encoded once.

    Distinct descriptions are sorted by length and encoded `batch_size` at a time so that
    batches carry little padding.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    descriptions = check_texts(descriptions)
    cache = TextFeatureCache(encoder)
    distinct = sorted(dict.fromkeys(descriptions), key=len)
    for start in range(0, len(distinct), batch_size):
        cache.lookup(distinct[start : start + batch_size])
    return [cache.lookup([d])[0].astype(dtype) for d in descriptions]
