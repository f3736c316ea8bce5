"""The PE-AV transformer (the Judge uses it twice, PE-A-Frame once) in Flax NNX.

Input (B, T, H) features. A learned class token is prepended, then a residual block of two
(GroupNorm with one group, SiLU, Conv1d k3 "same") acts as the patch embedder; then pre-norm
layers (RMSNorm; attention with per-head RMSNorm on q and k and interleaved rotary
embeddings; SwiGLU MLP), a final RMSNorm and a bias-free output projection. Returns the frame
states (B, T, H) and the class token's state (B, H).

With a (B, T) valid-frame mask the group norm's statistics use valid frames only (and its
output is zeroed outside them) and attention ignores padded keys; the class token counts as
valid. Without one every frame counts, as in the release Judge (see config.JudgeConfig).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from samaudio_jax.judge.config import PeTransformerConfig
from samaudio_jax.judge.layers import RMSNorm, attention, key_mask, rope_interleaved


class ConvBlock(nnx.Module):
    """Masked GroupNorm(1 group) -> SiLU -> Conv1d(k3, same)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.groupnorm_weight = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.groupnorm_bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
        self.project = nnx.Conv(dim, dim, kernel_size=(3,), padding="SAME", rngs=rngs)

    def __call__(self, x, mask=None, eps: float = 1e-5):
        x32 = x.astype(jnp.float32)
        if mask is None:
            mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
            var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
        else:
            m = mask[..., None].astype(jnp.float32)
            count = jnp.maximum(jnp.sum(m, axis=(1, 2), keepdims=True) * x.shape[-1], 1.0)
            mean = jnp.sum(x32 * m, axis=(1, 2), keepdims=True) / count
            var = jnp.sum(jnp.square(x32 - mean) * m, axis=(1, 2), keepdims=True) / count
        y = (x32 - mean) * jax.lax.rsqrt(var + eps)
        y = y * self.groupnorm_weight[...] + self.groupnorm_bias[...]
        if mask is not None:
            y = y * mask[..., None]
        return self.project(jax.nn.silu(y).astype(x.dtype))


class PatchEmbedder(nnx.Module):
    """Class token + residual block of two ConvBlocks."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.cls_token = nnx.Param(jax.random.normal(rngs.params(), (1, 1, dim)) * dim**-0.5)
        self.block1 = ConvBlock(dim, rngs=rngs)
        self.block2 = ConvBlock(dim, rngs=rngs)

    def __call__(self, x, mask=None):
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (x.shape[0], 1, x.shape[2]))
        x = jnp.concatenate([cls, x], axis=1)
        if mask is not None:
            mask = jnp.concatenate([jnp.ones((x.shape[0], 1), bool), mask.astype(bool)], axis=1)
        return x + self.block2(self.block1(x, mask), mask), mask


class PeLayer(nnx.Module):
    def __init__(self, cfg: PeTransformerConfig, *, rngs: nnx.Rngs):
        h, d = cfg.hidden_size, cfg.head_dim
        heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
        bias = cfg.attention_bias
        self.q_proj = nnx.Linear(h, heads * d, use_bias=bias, rngs=rngs)
        self.k_proj = nnx.Linear(h, kv * d, use_bias=bias, rngs=rngs)
        self.v_proj = nnx.Linear(h, kv * d, use_bias=bias, rngs=rngs)
        self.o_proj = nnx.Linear(heads * d, h, use_bias=bias, rngs=rngs)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.gate_proj = nnx.Linear(h, cfg.intermediate_size, use_bias=False, rngs=rngs)
        self.up_proj = nnx.Linear(h, cfg.intermediate_size, use_bias=False, rngs=rngs)
        self.down_proj = nnx.Linear(cfg.intermediate_size, h, use_bias=False, rngs=rngs)
        self.input_layernorm = RMSNorm(h, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(h, cfg.rms_norm_eps)
        self.heads, self.kv_heads, self.head_dim = heads, kv, d
        self.theta = cfg.rope_theta

    def __call__(self, x, allowed=None):
        b, n, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_norm(self.q_proj(y).reshape(b, n, self.heads, self.head_dim))
        k = self.k_norm(self.k_proj(y).reshape(b, n, self.kv_heads, self.head_dim))
        v = self.v_proj(y).reshape(b, n, self.kv_heads, self.head_dim)
        q, k = rope_interleaved(q, self.theta), rope_interleaved(k, self.theta)
        x = x + self.o_proj(attention(q, k, v, allowed).reshape(b, n, -1))
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(jax.nn.silu(self.gate_proj(y)) * self.up_proj(y))


class PeTransformer(nnx.Module):
    def __init__(self, cfg: PeTransformerConfig, *, rngs: nnx.Rngs):
        self.embeddings = PatchEmbedder(cfg.hidden_size, rngs=rngs)
        self.layers = nnx.List([PeLayer(cfg, rngs=rngs) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.output = nnx.Linear(cfg.hidden_size, cfg.hidden_size, use_bias=False, rngs=rngs)

    def __call__(self, x, mask=None):
        """(B, T, H) and optional (B, T) valid mask -> frames (B, T, H), class state (B, H)."""
        x, mask = self.embeddings(x, mask)
        allowed = key_mask(mask)
        for layer in self.layers:
            x = layer(x, allowed)
        x = self.output(self.norm(x))
        return x[:, 1:], x[:, 0]
