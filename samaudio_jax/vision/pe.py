"""The PE-Core vision tower (PE-Core-L14-336 by default) in Flax NNX.

frames (N, H, W, 3), already normalised -> patch embedding -> [CLS | patches] + absolute
positions -> ln_pre -> pre-norm transformer blocks with 2-D RoPE on q and k -> ln_post ->
attention pooling (one learned probe, pool_heads heads, then a residual MLP) -> @ proj ->
L2 normalisation. Output (N, output_dim) in float32.

RoPE: head_dim is split in two halves, the first rotated by the patch's column, the second
by its row (positions start at 1; CLS sits at 0, unrotated). Each half uses head_dim / 4
frequencies theta ** (-2i / (head_dim / 2)), each repeated for an ADJACENT pair (2m, 2m+1).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from samaudio_jax.model import layers as L


@dataclasses.dataclass(frozen=True)
class PEConfig:
    """Sizes of the tower; the defaults are PE-Core-L14-336's."""

    image_size: int = 336
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    pool_heads: int = 8
    output_dim: int = 1024
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    dtype: str = "float32"
    param_dtype: str = "float32"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        return int(self.width * self.mlp_ratio)

    def validate(self) -> PEConfig:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"vision.image_size={self.image_size} must be a multiple of "
                f"vision.patch_size={self.patch_size}"
            )
        if self.width % self.heads or self.head_dim % 4:
            raise ValueError(
                f"vision.width={self.width} / vision.heads={self.heads} must be a multiple of 4 "
                "(2-D RoPE rotates pairs in two halves)"
            )
        if self.width % self.pool_heads:
            raise ValueError(
                f"vision.width={self.width} must be divisible by vision.pool_heads={self.pool_heads}"
            )
        return self

    @classmethod
    def from_config(cls, vision: ml_collections.ConfigDict) -> PEConfig:
        """From the experiment config's `vision` section (config_schema.py)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: vision[n] for n in names if n in vision}).validate()


def rope_angles(cfg: PEConfig) -> np.ndarray:
    """(1 + grid**2, head_dim / 2) rotation angles, one per adjacent pair, CLS row all 0."""
    axis_dim = cfg.head_dim // 2
    freqs = cfg.rope_theta ** (-np.arange(0, axis_dim, 2, dtype=np.float64) / axis_dim)
    pos = np.arange(1, cfg.grid + 1, dtype=np.float64)
    per_axis = pos[:, None] * freqs[None, :]  # (grid, head_dim / 4)
    g = cfg.grid
    cols = np.broadcast_to(per_axis[None, :, :], (g, g, per_axis.shape[1]))
    rows = np.broadcast_to(per_axis[:, None, :], (g, g, per_axis.shape[1]))
    patches = np.concatenate([cols, rows], axis=-1).reshape(g * g, -1)
    return np.concatenate([np.zeros((1, patches.shape[1])), patches]).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates adjacent pairs of x (N, S, H, hd) by per-token angles (S, hd / 2)."""
    xf = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


def _attend(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention over (N, S, H, hd) in float32 statistics, result (N, Sq, H * hd)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = jnp.einsum("nqhd,nkhd->nhqk", q, k, preferred_element_type=jnp.float32) * scale
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("nhqk,nkhd->nqhd", weights, v)
    return out.reshape(*out.shape[:2], -1)


class _Dense(L.Dense):
    """Dense with a torch-style fan-in initialised bias (every PE linear has one)."""

    def __init__(self, d_in: int, d_out: int, axes, *, dtype, param_dtype, rngs):
        super().__init__(
            d_in, d_out, axes=axes, use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )


class MLP(nnx.Module):
    """c_proj(gelu(c_fc(x))), exact (erf) GELU."""

    def __init__(self, width: int, hidden: int, **kw):
        self.c_fc = _Dense(width, hidden, ("embed", "mlp"), **kw)
        self.c_proj = _Dense(hidden, width, ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=False))


class SelfAttention(nnx.Module):
    """Fused qkv projection ([q | k | v], heads split (h d)), RoPE on q and k, out_proj."""

    def __init__(self, cfg: PEConfig, **kw):
        self.heads = cfg.heads
        self.in_proj = _Dense(cfg.width, 3 * cfg.width, ("embed", "heads"), **kw)
        self.out_proj = _Dense(cfg.width, cfg.width, ("heads", "embed"), **kw)

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        n, s, w = x.shape
        q, k, v = jnp.split(self.in_proj(x).reshape(n, s, 3, self.heads, -1), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return self.out_proj(_attend(q, k, v))


class Block(nnx.Module):
    """x + attn(ln_1(x)); x + mlp(ln_2(x)) (no layer scale)."""

    def __init__(self, cfg: PEConfig, **kw):
        pdt = kw["param_dtype"]
        self.ln_1 = L.LayerNorm(cfg.width, eps=cfg.norm_eps, param_dtype=pdt)
        self.attn = SelfAttention(cfg, **kw)
        self.ln_2 = L.LayerNorm(cfg.width, eps=cfg.norm_eps, param_dtype=pdt)
        self.mlp = MLP(cfg.width, cfg.mlp_width, **kw)

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x), cos, sin)
        return x + self.mlp(self.ln_2(x))


class AttentionPool(nnx.Module):
    """One learned probe attends to all tokens (no RoPE), then probe_out + mlp(layernorm(.)).

    in_proj is the fused [q | k | v] projection; q is taken of the probe, k and v of the tokens.
    """

    def __init__(self, cfg: PEConfig, *, rngs: nnx.Rngs, **kw):
        self.heads = cfg.pool_heads
        pdt = kw["param_dtype"]
        self.probe = L.make_param(
            rngs, jax.nn.initializers.normal(1.0), (1, cfg.width), (None, "embed"), pdt
        )
        self.in_proj = _Dense(cfg.width, 3 * cfg.width, ("embed", "heads"), rngs=rngs, **kw)
        self.out_proj = _Dense(cfg.width, cfg.width, ("heads", "embed"), rngs=rngs, **kw)
        self.layernorm = L.LayerNorm(cfg.width, eps=cfg.norm_eps, param_dtype=pdt)
        self.mlp = MLP(cfg.width, cfg.mlp_width, rngs=rngs, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        n, s, w = x.shape
        probe = jnp.broadcast_to(self.probe[...].astype(x.dtype)[None], (n, 1, w))
        kernel, bias = self.in_proj.kernel[...].astype(x.dtype), self.in_proj.bias[...]
        bias = bias.astype(x.dtype)
        q = (jnp.dot(probe, kernel[:, :w]) + bias[:w]).reshape(n, 1, self.heads, -1)
        kv = jnp.dot(x, kernel[:, w:]) + bias[w:]
        k, v = jnp.split(kv.reshape(n, s, 2, self.heads, -1), 2, axis=2)
        pooled = self.out_proj(_attend(q, k[:, :, 0], v[:, :, 0]))
        pooled = pooled + self.mlp(self.layernorm(pooled))
        return pooled[:, 0]


class PEVisionTower(nnx.Module):
    """PE-Core's visual tower: (N, image_size, image_size, 3) -> (N, output_dim), unit norm."""

    def __init__(self, cfg: PEConfig, *, rngs: nnx.Rngs):
        cfg = cfg.validate()
        self.cfg = cfg
        if jax.sharding.get_abstract_mesh().empty:
            with nnx.use_eager_sharding(False):
                self._build(cfg, rngs)
        else:
            self._build(cfg, rngs)

    def _build(self, cfg: PEConfig, rngs: nnx.Rngs):
        dt, pdt = L.resolve_dtype(cfg.dtype), L.resolve_dtype(cfg.param_dtype)
        kw = dict(dtype=dt, param_dtype=pdt, rngs=rngs)
        self.dtype = dt
        w, p = cfg.width, cfg.patch_size
        scale = w**-0.5
        self.patch_embed = L.make_param(
            rngs, L.fan_in_init(3 * p * p), (p, p, 3, w), (None, None, None, "embed"), pdt
        )
        self.class_embedding = L.make_param(
            rngs, jax.nn.initializers.normal(scale), (w,), ("embed",), pdt
        )
        self.positional_embedding = L.make_param(
            rngs, jax.nn.initializers.normal(scale), (1 + cfg.grid**2, w), (None, "embed"), pdt
        )
        self.ln_pre = L.LayerNorm(w, eps=cfg.norm_eps, param_dtype=pdt)
        self.blocks = nnx.List([Block(cfg, **kw) for _ in range(cfg.layers)])
        self.ln_post = L.LayerNorm(w, eps=cfg.norm_eps, param_dtype=pdt)
        self.attn_pool = AttentionPool(cfg, **kw)
        self.proj = L.make_param(
            rngs, jax.nn.initializers.normal(scale), (w, cfg.output_dim), ("embed", None), pdt
        )

    def __call__(self, frames: jax.Array, normalize: bool = True) -> jax.Array:
        """(N, S, S, 3) normalised frames -> (N, output_dim) float32 (unit norm if `normalize`)."""
        cfg = self.cfg
        n, h, w_px, c = frames.shape
        if (h, w_px, c) != (cfg.image_size, cfg.image_size, 3):
            raise ValueError(
                f"frames: expected (N, {cfg.image_size}, {cfg.image_size}, 3), got {frames.shape}"
            )
        p, g, dt = cfg.patch_size, cfg.grid, self.dtype
        patches = frames.astype(dt).reshape(n, g, p, g, p, 3).transpose(0, 1, 3, 2, 4, 5)
        kernel = self.patch_embed[...].astype(dt).reshape(p * p * 3, cfg.width)
        x = jnp.dot(patches.reshape(n, g * g, p * p * 3), kernel)
        cls = jnp.broadcast_to(self.class_embedding[...].astype(dt), (n, 1, cfg.width))
        x = jnp.concatenate([cls, x], axis=1) + self.positional_embedding[...].astype(dt)
        angles = jnp.asarray(rope_angles(cfg))
        cos, sin = jnp.cos(angles), jnp.sin(angles)
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.ln_post(x)
        pooled = self.attn_pool(x)
        out = jnp.dot(pooled.astype(jnp.float32), self.proj[...].astype(jnp.float32))
        if not normalize:
            return out
        norm = jnp.sqrt(jnp.sum(out * out, axis=-1, keepdims=True))
        return out / jnp.maximum(norm, 1e-12)
