"""The SAM Audio DiT: ResNet patcher, timestep and context embedders, adaLN-single blocks.

Inputs are channels-last: x (B, T, D) already projected by the flow wrapper (flow.py).
Blocks are either an nnx.List (scan_layers=False) or one stacked module whose parameters
carry a leading "layers" axis (scan_layers=True), run with jax.lax.scan.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from samaudio_jax.model import layers as L
from samaudio_jax.model.lora import spec_for

REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def timestep_frequencies(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """[cos(t f), sin(t f)] with f = exp(-ln(max_period) * arange(dim/2) / (dim/2)); t (B,)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros_like(emb[:, :1])], axis=-1)
    return emb


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    return x * (1 + scale) + shift


def modulation_table(rngs: nnx.Rngs, rows: int, dim: int, param_dtype):
    """adaLN-single's learned (rows, dim) shift/scale/gate table, N(0, 1/dim) at init."""
    return L.make_param(
        rngs,
        lambda k, s, t: jax.random.normal(k, s, t) / math.sqrt(dim),
        (rows, dim),
        (None, "embed"),
        param_dtype,
    )


class ConvBlock(nnx.Module):
    """GroupNorm(1 group) -> SiLU -> Conv1d(k=3).

    With `valid` (B, T) (the padding-aware variant) the GroupNorm statistics use valid frames
    only and the convolution's input is zero on padded frames, so a valid frame next to the
    padding sees exactly what it sees at the end of an unpadded sequence (the conv's own zero
    padding): nothing about the padding's length or content reaches a valid frame.
    """

    def __init__(self, dim: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.groupnorm = L.GroupNorm1(dim, param_dtype=param_dtype)
        self.project = L.Conv1d(dim, dim, 3, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, valid: jax.Array | None) -> jax.Array:
        h = jax.nn.silu(self.groupnorm(x, valid))
        if valid is not None:
            h = jnp.where(valid[:, :, None], h, jnp.zeros((), h.dtype))
        return self.project(h)


class ResnetPatcher(nnx.Module):
    """x + block2(block1(x)) on (B, T, D) (the release's Patcher with patch_size 1)."""

    def __init__(self, dim: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.block1 = ConvBlock(dim, **kw)
        self.block2 = ConvBlock(dim, **kw)

    def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        return x + self.block2(self.block1(x, valid), valid)


class TimestepEmbedder(nnx.Module):
    """Frequency embedding of raw t, then a SwiGLU projection to D."""

    def __init__(self, dim: int, freq_dim: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.freq_dim = freq_dim
        self.projection = L.SwiGLU(
            freq_dim, dim, dim, in_axis=None, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, t: jax.Array) -> jax.Array:
        return self.projection(timestep_frequencies(t, self.freq_dim))


class ContextEmbedder(nnx.Module):
    """Optional RMSNorm, then a SwiGLU projection D -> D of the cross-attention memory."""

    def __init__(self, dim: int, *, context_norm: bool, eps: float, dtype, param_dtype, rngs):
        self.norm = L.RMSNorm(dim, eps=eps, param_dtype=param_dtype) if context_norm else None
        self.projection = L.SwiGLU(dim, dim, dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, y: jax.Array) -> jax.Array:
        if self.norm is not None:
            y = self.norm(y)
        return self.projection(y)


class DiTBlock(nnx.Module):
    """Self-attention and SwiGLU FFN modulated by adaLN-single, plus ungated cross-attention."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        dt, pdt = L.resolve_dtype(cfg.dtype), L.resolve_dtype(cfg.param_dtype)
        d = cfg.dim
        lora_cfg = cfg.get("lora")
        attn_kw = dict(
            qk_norm=cfg.qk_norm,
            norm_eps=cfg.norm_eps,
            attention_impl=cfg.attention_impl,
            dtype=dt,
            param_dtype=pdt,
            rngs=rngs,
        )
        self.attention = L.Attention(
            d,
            cfg.num_heads,
            use_rope=True,
            rope_theta=L.rope_theta(cfg.max_positions),
            lora=spec_for(lora_cfg, "attention"),
            **attn_kw,
        )
        self.cross_attention = L.Attention(
            d, cfg.num_heads, use_rope=False, lora=spec_for(lora_cfg, "cross_attention"), **attn_kw
        )
        hidden = L.ffn_hidden_dim(d, cfg.ffn_exp, cfg.multiple_of)
        self.feed_forward = L.SwiGLU(
            d,
            hidden,
            d,
            dtype=dt,
            param_dtype=pdt,
            lora=spec_for(lora_cfg, "feed_forward"),
            rngs=rngs,
        )
        self.attention_norm = L.RMSNorm(d, eps=cfg.norm_eps, param_dtype=pdt)
        self.ffn_norm = L.RMSNorm(d, eps=cfg.norm_eps, param_dtype=pdt)
        self.scale_shift_table = modulation_table(rngs, 6, d, pdt)
        self.dropout_rate = float(cfg.dropout)

    def __call__(
        self,
        x: jax.Array,
        y: jax.Array | None,
        t0: jax.Array,
        padding_mask: jax.Array | None,
        memory_mask: jax.Array | None,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        b, _, d = x.shape
        x = L.constrain_acts(x)
        mod = self.scale_shift_table[...].astype(jnp.float32)[None] + t0.reshape(b, 6, d)
        mod = mod.astype(x.dtype)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            mod[:, i : i + 1] for i in range(6)
        )
        keys = [None] * 3 if dropout_key is None else list(jax.random.split(dropout_key, 3))
        rate = self.dropout_rate
        a = self.attention(
            modulate(self.attention_norm(x), shift_msa, scale_msa), None, padding_mask
        )
        h = L.constrain_acts(x + gate_msa * L.dropout(a, rate, keys[0]))
        if y is not None:
            h = h + L.dropout(self.cross_attention(h, y, memory_mask), rate, keys[1])
            h = L.constrain_acts(h)
        f = self.feed_forward(modulate(self.ffn_norm(h), shift_mlp, scale_mlp))
        return L.constrain_acts((h + gate_mlp * L.dropout(f, rate, keys[2])).astype(x.dtype))


def _run_block(block_fn, remat_policy: str):
    if remat_policy == "none":
        return block_fn
    if remat_policy not in REMAT_POLICIES:
        raise ValueError(
            f"model.remat_policy: expected one of none|{'|'.join(REMAT_POLICIES)}, "
            f"got {remat_policy!r}"
        )
    return jax.checkpoint(block_fn, policy=REMAT_POLICIES[remat_policy])


class DiT(nnx.Module):
    """The release's DiT over already projected inputs x (B, T, D)."""

    def __init__(self, cfg: ml_collections.ConfigDict, out_channels: int, *, rngs: nnx.Rngs):
        dt, pdt = L.resolve_dtype(cfg.dtype), L.resolve_dtype(cfg.param_dtype)
        d = cfg.dim
        kw = dict(dtype=dt, param_dtype=pdt, rngs=rngs)
        self.dtype = dt
        self.num_layers = int(cfg.num_layers)
        self.scan_layers = bool(cfg.scan_layers)
        self.remat_policy = str(cfg.remat_policy)
        self.padding_aware_groupnorm = bool(cfg.padding_aware_groupnorm)
        _run_block(lambda: None, self.remat_policy)  # validates the policy name early
        self.x_embedder = ResnetPatcher(d, **kw)
        self.t_embedder = TimestepEmbedder(d, cfg.frequency_embedding_dim, **kw)
        self.t_block = L.Dense(d, 6 * d, axes=("embed", "mlp"), use_bias=cfg.t_block_bias, **kw)
        self.y_embedder = ContextEmbedder(d, context_norm=cfg.context_norm, eps=cfg.norm_eps, **kw)
        if self.scan_layers:
            keys = jax.random.split(rngs.params(), self.num_layers)

            @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
            def make_blocks(key):
                return DiTBlock(cfg, rngs=nnx.Rngs(params=key))

            self.layers = make_blocks(keys)
        else:
            self.layers = nnx.List([DiTBlock(cfg, rngs=rngs) for _ in range(self.num_layers)])
        self.norm = L.RMSNorm(d, eps=cfg.norm_eps, param_dtype=pdt)
        self.final_layer_scale_shift_table = modulation_table(rngs, 2, d, pdt)
        self.output = L.Dense(d, out_channels, axes=("embed", "latent"), **kw)

    def __call__(
        self,
        x: jax.Array,
        time: jax.Array,
        padding_mask: jax.Array | None = None,
        memory: jax.Array | None = None,
        memory_mask: jax.Array | None = None,
        t_extra: jax.Array | None = None,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """x (B, T, D), time (B,), padding_mask (B, T) True=valid, memory (B, S, D),
        memory_mask (B, S) True=attend, t_extra (B, D) added to the t embedding."""
        x = x.astype(self.dtype)
        valid = padding_mask if self.padding_aware_groupnorm else None
        h = L.constrain_acts(self.x_embedder(L.constrain_acts(x), valid))
        t_emb = L.constrain_acts(self.t_embedder(time))
        if t_extra is not None:
            t_emb = t_emb + t_extra.astype(t_emb.dtype)
        t0 = L.constrain_acts(self.t_block(jax.nn.silu(t_emb)))
        y = None
        if memory is not None:
            y = L.constrain_acts(self.y_embedder(L.constrain_acts(memory.astype(self.dtype))))
        layer_keys = None if dropout_key is None else jax.random.split(dropout_key, self.num_layers)

        def apply_block(graphdef):
            def block_fn(state, h, key):
                block = nnx.merge(graphdef, state)
                return block(h, y, t0, padding_mask, memory_mask, key)

            return _run_block(block_fn, self.remat_policy)

        if self.scan_layers:
            graphdef, state = nnx.split(self.layers)
            block_fn = apply_block(graphdef)

            def body(carry, xs):
                st, key = xs
                return L.constrain_acts(block_fn(st, L.constrain_acts(carry), key)), None

            h, _ = jax.lax.scan(body, h, (state, layer_keys))
        else:
            for i, block in enumerate(self.layers):
                graphdef, state = nnx.split(block)
                key = None if layer_keys is None else layer_keys[i]
                h = apply_block(graphdef)(state, h, key)

        table = self.final_layer_scale_shift_table[...].astype(jnp.float32)
        shift = (table[0][None] + t_emb)[:, None].astype(h.dtype)
        scale = (table[1][None] + t_emb)[:, None].astype(h.dtype)
        return L.constrain_acts(self.output(modulate(self.norm(h), shift, scale)))
