"""The interface every text encoder implements, and the padding rule they share.

A text encoder has two halves:
- `tokenize(texts)` runs on the host and returns numpy `ids` (B, S) int32 and `mask` (B, S)
  bool (True = a real token). Every string, the empty prompt "" included, yields at least
  one valid token, so conditioning dropout can encode "" like any other prompt.
- `__call__(ids, mask)` is pure JAX and returns features (B, S, dim) float32; it can run
  inside a jitted train or sampling step.

Sequence length S is the longest prompt of the batch ("longest" padding), or, with
`bucket_length > 0`, that length rounded up to a multiple of `bucket_length` (capped at
`max_length`), so that a jitted step sees only a few distinct shapes. Setting
`bucket_length == max_length` gives one fixed shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def padded_length(longest: int, *, bucket_length: int, max_length: int) -> int:
    """Sequence length for a batch whose longest row has `longest` tokens."""
    if bucket_length < 0:
        raise ValueError(f"bucket_length: expected >= 0, got {bucket_length}")
    if bucket_length == 0:
        return longest
    return min(math.ceil(longest / bucket_length) * bucket_length, max(max_length, longest))


def pad_token_lists(
    token_lists: Sequence[Sequence[int]],
    *,
    pad_id: int,
    bucket_length: int = 0,
    max_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads token rows into (ids int32 (B, S), mask bool (B, S))."""
    if not token_lists:
        raise ValueError("texts: expected at least one string, got an empty list")
    for i, row in enumerate(token_lists):
        if len(row) == 0:
            raise ValueError(f"texts[{i}]: tokenized to no tokens; expected at least one")
        if len(row) > max_length:
            raise ValueError(f"texts[{i}]: {len(row)} tokens exceed max_length {max_length}")
    longest = max(len(row) for row in token_lists)
    length = padded_length(longest, bucket_length=bucket_length, max_length=max_length)
    ids = np.full((len(token_lists), length), pad_id, dtype=np.int32)
    mask = np.zeros((len(token_lists), length), dtype=np.bool_)
    for i, row in enumerate(token_lists):
        ids[i, : len(row)] = np.asarray(row, dtype=np.int32)
        mask[i, : len(row)] = True
    return ids, mask


def check_texts(texts: Sequence[str]) -> list[str]:
    """Returns `texts` as a list, or raises naming the first entry that is not a str."""
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of strings, got a single str")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
    return texts


class TextEncoder(nnx.Module):
    """Base class: subclasses set the attributes below and implement tokenize / __call__."""

    dim: int  # feature width
    trainable: bool  # False: frozen weights (not nnx.Param), gradients stopped
    max_length: int  # tokens per prompt at most (longer prompts are truncated)
    bucket_length: int  # 0: pad to the longest prompt; >0: round lengths up to a multiple

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def host_tokenizer(self):
        """`tokenize` as a small picklable callable holding no weights and no devices (what
        data-loader worker processes get). Subclasses return their tokenizer object; this
        default (the bound method) only serves in-process loading."""
        return self.tokenize

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> tuple[jax.Array, np.ndarray]:
        """Host convenience: tokenize then run; returns (features, mask)."""
        ids, mask = self.tokenize(texts)
        return self(jnp.asarray(ids), jnp.asarray(mask)), mask
