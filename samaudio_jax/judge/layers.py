"""Small shared pieces of the text and audio transformers: RMSNorm, the two rotary
embedding layouts, and masked dot-product attention.

Activations are (B, L, ...) channels-last; softmax and norms run in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class RMSNorm(nnx.Module):
    """x / rms(x) * weight (the PE transformer's norm; weight named as in torch)."""

    def __init__(self, dim: int, eps: float):
        self.weight = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.eps = eps

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (self.weight[...] * x32).astype(x.dtype)


def inverse_frequencies(head_dim: int, theta: float) -> jax.Array:
    return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))


def rope_interleaved(x, theta: float):
    """Rotates channel pairs (2i, 2i+1) of x (B, L, H, D) by position * theta^(-2i/D):
    the PE transformer's complex-number layout."""
    length, dim = x.shape[1], x.shape[-1]
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inverse_frequencies(dim, theta)
    cos, sin = jnp.cos(angles)[None, :, None], jnp.sin(angles)[None, :, None]
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], dim // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    out = jnp.stack([a * cos - b * sin, a * sin + b * cos], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


def rope_half(x, theta: float):
    """Rotates channel i with channel i + D/2 (ModernBERT's "rotate half" layout)."""
    length, dim = x.shape[1], x.shape[-1]
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inverse_frequencies(dim, theta)
    angles = jnp.concatenate([angles, angles], axis=-1)
    cos, sin = jnp.cos(angles)[None, :, None], jnp.sin(angles)[None, :, None]
    x32 = x.astype(jnp.float32)
    half = dim // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


def attention(q, k, v, allowed=None):
    """q (B, L, H, D), k/v (B, L, Hkv, D); `allowed` (B, 1 or H, L, L) bool or None.
    Grouped heads share a kv head, as repeat_kv does."""
    heads, kv_heads = q.shape[2], k.shape[2]
    if heads != kv_heads:
        k = jnp.repeat(k, heads // kv_heads, axis=2)
        v = jnp.repeat(v, heads // kv_heads, axis=2)
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    if allowed is not None:
        logits = jnp.where(allowed, logits, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def key_mask(mask):
    """(B, L) valid-key mask -> (B, 1, 1, L) for `attention` (None passes)."""
    return None if mask is None else mask[:, None, None, :].astype(bool)
