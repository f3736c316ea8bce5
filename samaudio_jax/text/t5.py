"""The T5 encoder in Flax NNX (frozen), as the release uses it for text prompts.

Per SPEC.md: token embedding (no scaling), pre-norm blocks of self-attention and a FFN
with residuals, a final RMS norm. The RMS norm has no mean and no bias and computes its
variance in float32. Attention has NO 1/sqrt(d) scaling; a relative position bias
(num_buckets, num_heads) lives in layer 0 only and is shared by every layer; buckets are
bidirectional: half a side, exact below a quarter of the buckets, log-spaced up to
max_distance. The FFN is ReLU (original T5) or gated (v1.1: gelu_new(wi_0 x) * wi_1 x).
No biases anywhere.

Weights are `FrozenWeight` variables, not `nnx.Param`: an optimizer built with
`wrt=nnx.Param` never sees them, and `T5TextEncoder` stops gradients at its output.
Padded positions of the features it returns are zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.text.base import TextEncoder
from samaudio_jax.text.t5_config import T5EncoderConfig


class FrozenWeight(nnx.Variable):
    """A pretrained weight that training leaves alone."""


def _weight(rngs: nnx.Rngs, shape, axes, std: float) -> FrozenWeight:
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
    return FrozenWeight(value, out_sharding=axes)


def relative_position_buckets(
    query_length: int, key_length: int, *, num_buckets: int, max_distance: int
) -> np.ndarray:
    """(query_length, key_length) int32 bucket of (key position - query position)."""
    relative = np.arange(key_length)[None, :] - np.arange(query_length)[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).astype(np.int64) * half
    distance = np.abs(relative)
    max_exact = half // 2
    scaled = np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(max_exact))
    scaled = scaled / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    buckets = buckets + np.where(distance < max_exact, distance, large)
    return buckets.astype(np.int32)


_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
}


class T5RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float):
        self.weight = FrozenWeight(jnp.ones((dim,), jnp.float32), out_sharding=("norm",))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        variance = jnp.mean(x32 * x32, axis=-1, keepdims=True)
        normed = (x32 * jax.lax.rsqrt(variance + self.eps)).astype(x.dtype)
        return self.weight[...].astype(x.dtype) * normed


class T5Block(nnx.Module):
    def __init__(self, cfg: T5EncoderConfig, *, rngs: nnx.Rngs):
        d, h, k, f = cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff
        self.attn_norm = T5RMSNorm(d, cfg.layer_norm_epsilon)
        self.q = _weight(rngs, (d, h, k), ("embed", "heads", "kv"), (d * k) ** -0.5)
        self.k = _weight(rngs, (d, h, k), ("embed", "heads", "kv"), d**-0.5)
        self.v = _weight(rngs, (d, h, k), ("embed", "heads", "kv"), d**-0.5)
        self.o = _weight(rngs, (h, k, d), ("heads", "kv", "embed"), (h * k) ** -0.5)
        self.ffn_norm = T5RMSNorm(d, cfg.layer_norm_epsilon)
        if cfg.is_gated:
            self.wi_0 = _weight(rngs, (d, f), ("embed", "mlp"), d**-0.5)
            self.wi_1 = _weight(rngs, (d, f), ("embed", "mlp"), d**-0.5)
        else:
            self.wi = _weight(rngs, (d, f), ("embed", "mlp"), d**-0.5)
        self.wo = _weight(rngs, (f, d), ("mlp", "embed"), f**-0.5)
        self.gated = cfg.is_gated
        self.activation = cfg.activation

    def __call__(self, x: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
        dt = x.dtype
        h = self.attn_norm(x)
        q = jnp.einsum("bsd,dhk->bshk", h, self.q[...].astype(dt))
        k = jnp.einsum("bsd,dhk->bshk", h, self.k[...].astype(dt))
        v = jnp.einsum("bsd,dhk->bshk", h, self.v[...].astype(dt))
        scores = jnp.einsum("bqhk,bthk->bhqt", q, k).astype(jnp.float32) + bias
        scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1).astype(dt)
        attended = jnp.einsum("bhqt,bthk->bqhk", weights, v)
        x = x + jnp.einsum("bshk,hkd->bsd", attended, self.o[...].astype(dt))

        h = self.ffn_norm(x)
        act = _ACTIVATIONS[self.activation]
        if self.gated:
            inner = act(h @ self.wi_0[...].astype(dt)) * (h @ self.wi_1[...].astype(dt))
        else:
            inner = act(h @ self.wi[...].astype(dt))
        return x + inner @ self.wo[...].astype(dt)


class T5Network(nnx.Module):
    """ids (B, S) int, mask (B, S) bool -> last_hidden_state (B, S, d_model) float32."""

    def __init__(self, cfg: T5EncoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        cfg.validate()
        self.config = cfg
        self.dtype = jnp.dtype(dtype)
        self.embedding = _weight(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), 1.0)
        self.relative_attention_bias = _weight(
            rngs, (cfg.relative_attention_num_buckets, cfg.num_heads), (None, "heads"), 0.5
        )
        self.blocks = nnx.List([T5Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = T5RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def position_bias(self, length: int) -> jax.Array:
        """(num_heads, length, length) float32 bias, computed once and shared by all layers."""
        buckets = relative_position_buckets(
            length,
            length,
            num_buckets=self.config.relative_attention_num_buckets,
            max_distance=self.config.relative_attention_max_distance,
        )
        table = self.relative_attention_bias[...].astype(jnp.float32)
        return jnp.transpose(jnp.take(table, jnp.asarray(buckets), axis=0), (2, 0, 1))

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        mask = mask.astype(jnp.bool_)
        x = jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)
        bias = self.position_bias(ids.shape[1])[None]
        for block in self.blocks:
            x = block(x, bias, mask)
        return self.final_norm(x).astype(jnp.float32)


class T5TextEncoder(TextEncoder):
    """Frozen T5 behind the TextEncoder interface (tokenizer from the same directory)."""

    def __init__(self, network: T5Network, tokenizer):
        self.network = network
        self.tokenizer = tokenizer
        self.dim = network.config.d_model
        self.trainable = False
        self.max_length = tokenizer.max_length
        self.bucket_length = tokenizer.bucket_length

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.tokenizer(texts)

    def host_tokenizer(self):
        return self.tokenizer

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        mask = mask.astype(jnp.bool_)
        features = jax.lax.stop_gradient(self.network(ids, mask))
        return jnp.where(mask[..., None], features, 0.0)
