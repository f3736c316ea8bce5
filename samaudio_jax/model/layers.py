"""Building blocks of the flow network: parameters with logical axes, norms, SwiGLU, attention.

Every parameter is an `nnx.Param` carrying `out_sharding` = a tuple of logical axis names
(see config_schema.py mesh.rules); mapping them to mesh axes is the parallel package's job.
Layouts are channels-last ((B, T, C)); kernels are stored [in, out] (the checkpoint importer
transposes the release's [out, in]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from samaudio_jax.model.lora import LoRA, LoRASpec
from samaudio_jax.parallel.constraints import constrain

Initializer = Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(name) -> jnp.dtype:
    """Maps a config dtype name ("float32", "bfloat16", ...) to a jnp dtype."""
    if not isinstance(name, str):
        return jnp.dtype(name)
    if name not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def fan_in_init(fan_in: int) -> Initializer:
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for Linear and Conv1d."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def make_param(
    rngs: nnx.Rngs | None,
    init: Initializer,
    shape: Sequence[int],
    axes: tuple[str | None, ...],
    param_dtype,
) -> nnx.Param:
    """An nnx.Param of `shape` with one logical axis name per dimension."""
    if len(axes) != len(shape):
        raise ValueError(f"logical axes {axes} do not match parameter shape {tuple(shape)}")
    key = rngs.params() if rngs is not None else jax.random.key(0)
    return nnx.Param(init(key, tuple(shape), param_dtype), out_sharding=axes)


def ones_init(key, shape, dtype):
    del key
    return jnp.ones(shape, dtype)


def zeros_init(key, shape, dtype):
    del key
    return jnp.zeros(shape, dtype)


def constrain_acts(x: jax.Array, last: str | None = None) -> jax.Array:
    """Constrains an activation (B, [T, ...,] C) to (batch, length..., last) logical axes."""
    return constrain(x, ("batch",) + ("length",) * (x.ndim - 2) + (last,))


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; identity when key is None or rate is 0."""
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


class Dense(nnx.Module):
    """y = x @ kernel (+ bias); kernel [in, out] with logical axes `axes`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        axes: tuple[str | None, str | None],
        use_bias: bool = False,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        kernel_init: Initializer | None = None,
        lora: LoRASpec | None = None,
        rngs: nnx.Rngs,
    ):
        init = kernel_init or fan_in_init(in_features)
        self.kernel = make_param(rngs, init, (in_features, out_features), axes, param_dtype)
        self.kernel_lora = (
            LoRA(
                (in_features,),
                (out_features,),
                lora,
                in_axes=axes[:1],
                out_axes=axes[1:],
                rngs=rngs,
            )
            if lora is not None
            else None
        )
        self.bias = (
            make_param(rngs, fan_in_init(in_features), (out_features,), (axes[1],), param_dtype)
            if use_bias
            else None
        )
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.dot(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        if self.kernel_lora is not None:
            y = y + self.kernel_lora(x, self.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class RMSNorm(nnx.Module):
    """x / rms(x) * weight, computed in float32, returned in the input dtype."""

    def __init__(self, dim: int, *, eps: float = 1e-5, param_dtype=jnp.float32, rngs=None):
        self.weight = make_param(None, ones_init, (dim,), ("norm",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (y * self.weight[...].astype(jnp.float32)).astype(x.dtype)


class SwiGLU(nnx.Module):
    """w2(silu(w1 x) * w3 x): the FFN and the t/y embedders' projection."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        *,
        in_axis: str = "embed",
        hidden_axis: str = "mlp",
        out_axis: str = "embed",
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        lora: LoRASpec | None = None,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        def adapter(name):  # LoRA on this projection, if the spec names it
            return lora if lora is not None and lora.wants(name) else None

        self.w1 = Dense(in_dim, hidden_dim, axes=(in_axis, hidden_axis), lora=adapter("w1"), **kw)
        self.w3 = Dense(in_dim, hidden_dim, axes=(in_axis, hidden_axis), lora=adapter("w3"), **kw)
        self.w2 = Dense(hidden_dim, out_dim, axes=(hidden_axis, out_axis), lora=adapter("w2"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        hidden = constrain_acts(jax.nn.silu(self.w1(x)) * self.w3(x), "mlp")
        return constrain_acts(self.w2(hidden))


def ffn_hidden_dim(dim: int, ffn_exp: int, multiple_of: int) -> int:
    """The release's SwiGLU width: multiple_of * ceil(int(2 * ffn_exp * dim / 3) / multiple_of)."""
    hidden = int(2 * int(ffn_exp * dim) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def rope_theta(max_positions: int) -> float:
    return float(max(10000, 2 * max_positions))


def apply_rope(x: jax.Array, theta: float) -> jax.Array:
    """Rotates adjacent channel pairs (2i, 2i+1) of x (B, T, H, hd) by position * theta^(-2i/hd)."""
    _, t, _, hd = x.shape
    freqs = 1.0 / (theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    angles = jnp.arange(t, dtype=jnp.float32)[:, None] * freqs[None, :]  # (T, hd/2)
    cos = jnp.cos(angles)[None, :, None, :]
    sin = jnp.sin(angles)[None, :, None, :]
    xf = x.astype(jnp.float32).reshape(*x.shape[:-1], hd // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    out = jnp.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


class Attention(nnx.Module):
    """Multi-head attention with the release's head_dim-major head split.

    Projection channel c belongs to head c % H at position c // H; the kernels are stored
    split as [D, hd, H] (q, k, v) and [H, hd, D] (output, merged in the usual (h d) order),
    which is a plain reshape of the release's matrices.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qk_norm: bool = True,
        norm_eps: float = 1e-5,
        use_rope: bool = False,
        rope_theta: float = 10000.0,
        attention_impl: str = "xla",
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        lora: LoRASpec | None = None,
        rngs: nnx.Rngs,
    ):
        if dim % num_heads:
            raise ValueError(f"model.dim={dim} is not divisible by model.num_heads={num_heads}")
        hd = dim // num_heads
        self.num_heads, self.head_dim = num_heads, hd
        init = fan_in_init(dim)
        qkv_axes = ("embed", "kv", "heads")
        self.wq = make_param(rngs, init, (dim, hd, num_heads), qkv_axes, param_dtype)
        self.wk = make_param(rngs, init, (dim, hd, num_heads), qkv_axes, param_dtype)
        self.wv = make_param(rngs, init, (dim, hd, num_heads), qkv_axes, param_dtype)
        self.wo = make_param(
            rngs, init, (num_heads, hd, dim), ("heads", "kv", "embed"), param_dtype
        )
        # LoRA adapters (model/lora.py) beside the kernels they adapt; None when not asked for.
        shapes = {
            "wq": ((dim,), (hd, num_heads), ("embed",), ("kv", "heads")),
            "wk": ((dim,), (hd, num_heads), ("embed",), ("kv", "heads")),
            "wv": ((dim,), (hd, num_heads), ("embed",), ("kv", "heads")),
            "wo": ((num_heads, hd), (dim,), ("heads", "kv"), ("embed",)),
        }
        for name, (ins, outs, in_axes, out_axes) in shapes.items():
            adapter = None
            if lora is not None and lora.wants(name):
                adapter = LoRA(
                    ins,
                    outs,
                    lora,
                    in_axes=in_axes,
                    out_axes=out_axes,
                    rngs=rngs,
                )
            setattr(self, name + "_lora", adapter)
        if qk_norm:
            self.q_norm = RMSNorm(hd, eps=norm_eps, param_dtype=param_dtype)
            self.k_norm = RMSNorm(hd, eps=norm_eps, param_dtype=param_dtype)
        else:
            self.q_norm = self.k_norm = None
        self.use_rope, self.rope_theta = use_rope, rope_theta
        self.attention_impl = None if attention_impl == "xla" else attention_impl
        self.dtype = dtype

    def __call__(
        self, x: jax.Array, context: jax.Array | None = None, key_mask: jax.Array | None = None
    ) -> jax.Array:
        """x (B, T, D) attends to context (B, S, D) (itself when None); key_mask (B, S) True=attend."""
        dt = self.dtype
        src = x if context is None else context
        x, src = x.astype(dt), src.astype(dt)
        # Project to the kernels' own (hd, H) order, then swap: asking the einsum for (H, hd)
        # directly makes XLA:CPU transpose the whole kernel on every call (2x slower).
        q = self._adapted("wq", jnp.einsum("btd,dkh->btkh", x, self.wq[...].astype(dt)), x)
        k = self._adapted("wk", jnp.einsum("bsd,dkh->bskh", src, self.wk[...].astype(dt)), src)
        v = self._adapted("wv", jnp.einsum("bsd,dkh->bskh", src, self.wv[...].astype(dt)), src)
        q, k, v = (a.swapaxes(-1, -2) for a in (q, k, v))
        q, k, v = (constrain(a, ("batch", "length", "heads", "kv")) for a in (q, k, v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.use_rope and context is None:
            q, k = apply_rope(q, self.rope_theta), apply_rope(k, self.rope_theta)
        mask = None if key_mask is None else key_mask[:, None, None, :].astype(bool)
        out = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=self.attention_impl)
        out = constrain(out, ("batch", "length", "heads", "kv"))
        y = jnp.einsum("bthk,hkd->btd", out, self.wo[...].astype(dt))
        return constrain_acts(self._adapted("wo", y, out))

    def _adapted(self, name: str, y: jax.Array, x: jax.Array) -> jax.Array:
        """y (x through kernel `name`) plus that kernel's LoRA update of x, if it has one."""
        adapter = getattr(self, name + "_lora")
        return y if adapter is None else y + adapter(x, self.dtype)


class GroupNorm1(nnx.Module):
    """GroupNorm with one group over (T, C) of a (B, T, C) input, float32 statistics.

    With `valid` (B, T) given, the statistics use valid frames only (padding-aware variant);
    with every frame valid it equals the plain GroupNorm.
    """

    def __init__(self, dim: int, *, eps: float = 1e-5, param_dtype=jnp.float32):
        self.weight = make_param(None, ones_init, (dim,), ("norm",), param_dtype)
        self.bias = make_param(None, zeros_init, (dim,), ("norm",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        xf = x.astype(jnp.float32)
        if valid is None:
            mean = jnp.mean(xf, axis=(1, 2), keepdims=True)
            var = jnp.mean(jnp.square(xf - mean), axis=(1, 2), keepdims=True)
        else:
            w = valid.astype(jnp.float32)[:, :, None]
            count = jnp.maximum(jnp.sum(w, axis=(1, 2), keepdims=True) * x.shape[-1], 1.0)
            mean = jnp.sum(xf * w, axis=(1, 2), keepdims=True) / count
            var = jnp.sum(jnp.square(xf - mean) * w, axis=(1, 2), keepdims=True) / count
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis with weight and bias, float32 statistics."""

    def __init__(self, dim: int, *, eps: float = 1e-5, param_dtype=jnp.float32):
        self.weight = make_param(None, ones_init, (dim,), ("norm",), param_dtype)
        self.bias = make_param(None, zeros_init, (dim,), ("norm",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


class Conv1d(nnx.Module):
    """Conv1d on (B, T, C), stride 1, the release patcher's zero padding.

    Total padding k - 1, left = total - total // 2, right = total // 2 (with stride 1 no extra
    frames are needed). Kernel [k, in, out].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        init = fan_in_init(in_channels * kernel_size)
        self.kernel = make_param(
            rngs,
            init,
            (kernel_size, in_channels, out_channels),
            (None, "conv_in", "conv_out"),
            param_dtype,
        )
        self.bias = make_param(rngs, init, (out_channels,), ("conv_out",), param_dtype)
        total = kernel_size - 1
        self.padding = (total - total // 2, total // 2)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = self.dtype
        y = jax.lax.conv_general_dilated(
            x.astype(dt),
            self.kernel[...].astype(dt),
            window_strides=(1,),
            padding=(self.padding,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        )
        return y + self.bias[...].astype(dt)
