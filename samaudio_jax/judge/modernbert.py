"""ModernBERT (the release's text model) in Flax NNX, encoder only.

Embeddings (token table, LayerNorm), then layers of pre-norm attention and a gated GELU MLP
(Wi gives input and gate halves), with the first layer's attention norm omitted. Every
`global_attn_every_n_layers`-th layer attends over the whole text with the global rotary
base; the others only within `local_attention // 2` tokens either side, with the local base.
Padded keys are masked. `hidden_state(ids, mask, n)` is transformers' `hidden_states[n]`:
the embeddings for n = 0, the n-th layer's output (no final norm) otherwise, and only the
first n layers run; n = None gives the final, normed output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from samaudio_jax.judge.config import ModernBertConfig
from samaudio_jax.judge.layers import attention, rope_half


def _layer_norm(dim: int, cfg: ModernBertConfig, rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(dim, epsilon=cfg.norm_eps, use_bias=cfg.norm_bias, rngs=rngs)


class ModernBertLayer(nnx.Module):
    def __init__(self, cfg: ModernBertConfig, index: int, *, rngs: nnx.Rngs):
        h, inter = cfg.hidden_size, cfg.intermediate_size
        self.attn_norm = None if index == 0 else _layer_norm(h, cfg, rngs)
        self.wqkv = nnx.Linear(h, 3 * h, use_bias=cfg.attention_bias, rngs=rngs)
        self.wo = nnx.Linear(h, h, use_bias=cfg.attention_bias, rngs=rngs)
        self.mlp_norm = _layer_norm(h, cfg, rngs)
        self.wi = nnx.Linear(h, 2 * inter, use_bias=cfg.mlp_bias, rngs=rngs)
        self.mlp_out = nnx.Linear(inter, h, use_bias=cfg.mlp_bias, rngs=rngs)
        self.heads = cfg.num_attention_heads
        self.is_global = cfg.is_global(index)
        self.theta = cfg.global_rope_theta if self.is_global else cfg.local_rope_theta
        self.gelu_approximate = cfg.hidden_activation != "gelu"

    def __call__(self, x, allowed_global, allowed_local):
        b, n, h = x.shape
        y = x if self.attn_norm is None else self.attn_norm(x)
        q, k, v = jnp.split(self.wqkv(y).reshape(b, n, 3, self.heads, h // self.heads), 3, 2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
        q, k = rope_half(q, self.theta), rope_half(k, self.theta)
        allowed = allowed_global if self.is_global else allowed_local
        x = x + self.wo(attention(q, k, v, allowed).reshape(b, n, h))
        inp, gate = jnp.split(self.wi(self.mlp_norm(x)), 2, axis=-1)
        return x + self.mlp_out(jax.nn.gelu(inp, approximate=self.gelu_approximate) * gate)


class ModernBert(nnx.Module):
    def __init__(self, cfg: ModernBertConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.tok_embeddings = nnx.Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs)
        self.embed_norm = _layer_norm(cfg.hidden_size, cfg, rngs)
        self.layers = nnx.List(
            [ModernBertLayer(cfg, i, rngs=rngs) for i in range(cfg.num_hidden_layers)]
        )
        self.final_norm = _layer_norm(cfg.hidden_size, cfg, rngs)

    def hidden_state(self, input_ids, attention_mask=None, nth_layer: int | None = None):
        """(B, L) ids and 0/1 mask -> (B, L, hidden): see the module docstring."""
        n = input_ids.shape[1]
        valid = jnp.ones(input_ids.shape, bool) if attention_mask is None else attention_mask
        keys = valid.astype(bool)[:, None, None, :]
        pos = jnp.arange(n)
        near = jnp.abs(pos[:, None] - pos[None, :]) <= self.cfg.local_attention // 2
        allowed_local = keys & near[None, None]
        x = self.embed_norm(self.tok_embeddings(input_ids))
        count = len(self.layers) if nth_layer is None else nth_layer
        for layer in list(self.layers)[:count]:
            x = layer(x, keys, allowed_local)
        return self.final_norm(x) if nth_layer is None else x

    def __call__(self, input_ids, attention_mask=None):
        return self.hidden_state(input_ids, attention_mask, None)
