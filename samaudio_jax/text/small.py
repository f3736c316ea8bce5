"""A small text encoder trained jointly with the DiT (no pretrained weights needed).

Token embedding + sinusoidal positions, then pre-norm transformer layers (RMSNorm,
multi-head self-attention over valid tokens, GELU MLP), and a final RMSNorm. Padded
positions are masked out of attention and their outputs are zero, so padding never changes
a valid token's features. Every parameter carries logical axis names (vocab, embed, mlp,
heads, kv, norm); build it under `nnx.use_eager_sharding(False)` when no mesh is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.text.base import TextEncoder, check_texts, pad_token_lists
from samaudio_jax.text.simple_tokenizers import PAD_ID

_INIT_STD = 0.02


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str, ...], std: float):
    return nnx.Param(std * jax.random.normal(rngs.params(), shape, jnp.float32), out_sharding=axes)


def sinusoid_positions(length: int, dim: int) -> jax.Array:
    """(length, dim) sin/cos position table, [sin | cos] halves, max period 10000."""
    half = dim // 2
    freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * freqs[None, :]
    table = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return jnp.pad(table, ((0, 0), (0, dim - 2 * half)))


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), out_sharding=("norm",))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (x32 * self.scale[...]).astype(x.dtype)


class SmallTextLayer(nnx.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"text.small: dim {dim} is not divisible by num_heads {num_heads}")
        head_dim = dim // num_heads
        std_in = dim**-0.5
        self.attn_norm = RMSNorm(dim)
        self.wq = _param(rngs, (dim, num_heads, head_dim), ("embed", "heads", "kv"), std_in)
        self.wk = _param(rngs, (dim, num_heads, head_dim), ("embed", "heads", "kv"), std_in)
        self.wv = _param(rngs, (dim, num_heads, head_dim), ("embed", "heads", "kv"), std_in)
        self.wo = _param(rngs, (num_heads, head_dim, dim), ("heads", "kv", "embed"), _INIT_STD)
        self.mlp_norm = RMSNorm(dim)
        self.w_in = _param(rngs, (dim, mlp_dim), ("embed", "mlp"), std_in)
        self.w_out = _param(rngs, (mlp_dim, dim), ("mlp", "embed"), _INIT_STD)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        h = self.attn_norm(x)
        q = jnp.einsum("bsd,dhk->bshk", h, self.wq[...])
        k = jnp.einsum("bsd,dhk->bshk", h, self.wk[...])
        v = jnp.einsum("bsd,dhk->bshk", h, self.wv[...])
        logits = jnp.einsum("bqhk,bthk->bhqt", q, k) * (q.shape[-1] ** -0.5)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        attended = jnp.einsum("bhqt,bthk->bqhk", weights, v)
        x = x + jnp.einsum("bshk,hkd->bsd", attended, self.wo[...])
        h = self.mlp_norm(x)
        return x + jax.nn.gelu(h @ self.w_in[...]) @ self.w_out[...]


@dataclasses.dataclass(frozen=True)
class PaddedTokenizer:
    """texts -> (ids, mask) padded as the small encoder reads them; picklable (a vocabulary-
    free tokenizer and two ints), so Grain worker processes can run it."""

    tokenizer: Any  # ByteTokenizer | WordHashTokenizer
    max_length: int
    bucket_length: int

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self.tokenizer.encode(t) for t in check_texts(texts)]
        return pad_token_lists(
            rows, pad_id=PAD_ID, bucket_length=self.bucket_length, max_length=self.max_length
        )


class SmallTextEncoder(TextEncoder):
    """Trainable text encoder: `tokenize` on the host, `__call__` inside jit."""

    def __init__(
        self,
        *,
        tokenizer,
        dim: int,
        num_layers: int,
        num_heads: int,
        vocab_size: int,
        max_length: int,
        bucket_length: int = 0,
        mlp_ratio: int = 4,
        rngs: nnx.Rngs,
    ):
        self.dim = dim
        self.trainable = True
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bucket_length = bucket_length
        self.embedding = _param(rngs, (vocab_size, dim), ("vocab", "embed"), 1.0)
        self.layers = nnx.List(
            [SmallTextLayer(dim, num_heads, mlp_ratio * dim, rngs=rngs) for _ in range(num_layers)]
        )
        self.final_norm = RMSNorm(dim)

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.host_tokenizer()(texts)

    def host_tokenizer(self) -> PaddedTokenizer:
        return PaddedTokenizer(self.tokenizer, self.max_length, self.bucket_length)

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        mask = mask.astype(jnp.bool_)
        x = jnp.take(self.embedding[...], ids, axis=0)
        x = x + sinusoid_positions(ids.shape[1], self.dim)[None]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_norm(x)
        return jnp.where(mask[..., None], x, 0.0).astype(jnp.float32)
