"""DACVAE building blocks in NNX, channels-last (B, L, C), inference only.

Weights keep the release's PyTorch layouts so checkpoint import/export is a plain copy:
Conv1d weight (out, in, k), ConvTranspose1d weight (in, out, k), Snake alpha (1, C, 1),
LSTM weight_ih (4H, in) with gates [input, forget, cell, output]. Weight-normed layers
store `weight_g` (dim 0 size, then ones) and `weight_v`; the weight w = g * v / ||v||
(norm over every dim but the first) is folded inside the forward pass, so a jitted
caller computes it once per call and export stays bit-exact. For a ConvTranspose1d,
dim 0 is the INPUT channel, so there g follows the input channel.

Every layer takes an optional `mask` (B, L, 1) of 0/1 at its input rate: inputs are
zeroed outside it before each non-causal convolution, which makes a padded batch (or a
window of a longer sequence) compute exactly what each example alone would.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.codec.base import CodecWeight


def _normal(rng: np.random.Generator | None, shape, std: float = 0.02) -> np.ndarray:
    """The release's init (truncated normal, std 0.02), drawn on the host: building a
    full-size codec then costs no per-shape compilation. rng None: zeros (an import
    target that is never run before weights arrive)."""
    if rng is None:
        return np.zeros(shape, np.float32)
    x = rng.standard_normal(shape, dtype=np.float32)
    while (bad := np.abs(x) > 2.0).any():
        x[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
    return x * np.float32(std)


def _g_of(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(v * v, axis=(1, 2), keepdims=True))


def fold_weight_norm(g: jax.Array, v: jax.Array) -> jax.Array:
    """w = g * v / ||v||, the norm over all dims but the first (PyTorch's weight_norm, dim=0)."""
    v = v.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
    return v * (g.astype(jnp.float32) / norm)


def _masked(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    return x if mask is None else x * mask


def conv1d(x, weight, bias, *, stride=1, dilation=1, padding=(0, 0)):
    """x (B, L, I), weight (O, I, K) PyTorch layout, explicit (left, right) zero padding."""
    kernel = jnp.transpose(weight, (2, 1, 0)).astype(x.dtype)
    y = jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride,),
        padding=[tuple(padding)],
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
    )
    return y + bias.astype(x.dtype)


def conv_transpose1d(x, weight, bias, *, stride, padding=0, output_padding=0):
    """PyTorch ConvTranspose1d on x (B, L, I) with weight (I, O, K), K a multiple of stride.

    Computed as one matmul to (B, L, K, O) and an overlap-add of the K / stride phases,
    which avoids convolving over the stride-1 zeros a dilated-input convolution would.
    Output length (L - 1) * stride + K - 2 * padding + output_padding.
    """
    b, length, _ = x.shape
    _, out_ch, k = weight.shape
    if k % stride:
        raise ValueError(f"conv_transpose1d: kernel {k} must be a multiple of stride {stride}")
    m = k // stride
    z = jnp.einsum("bli,iok->blko", x, weight.astype(x.dtype))
    z = z.reshape(b, length, m, stride, out_ch)
    full = sum(
        jnp.pad(z[:, :, j], ((0, 0), (j, m - 1 - j), (0, 0), (0, 0))) for j in range(m)
    ).reshape(b, (length + m - 1) * stride, out_ch)
    end = full.shape[1] - padding + output_padding
    return full[:, padding:end] + bias.astype(x.dtype)


def causal_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """The release's causal "auto" padding: (k_eff - stride) left, and enough right for
    ceil(length / stride) complete output frames."""
    effective = (kernel - 1) * dilation + 1
    total = effective - stride
    frames = math.ceil((length - effective + total) / stride + 1)
    ideal = (frames - 1) * stride + (kernel - total)
    return total, ideal - length


class Snake(nnx.Module):
    """x + sin^2(alpha x) / (alpha + 1e-9), one alpha per channel."""

    def __init__(self, channels: int):
        self.alpha = CodecWeight(jax.device_put(np.ones((1, channels, 1), np.float32)))

    def __call__(self, x: jax.Array) -> jax.Array:
        alpha = self.alpha[...].reshape(-1).astype(x.dtype)
        return x + jnp.reciprocal(alpha + 1e-9) * jnp.square(jnp.sin(alpha * x))


class WNConv1d(nnx.Module):
    """Weight-normed Conv1d with the release's symmetric padding (k - stride) * dilation // 2."""

    def __init__(self, cin, cout, kernel, *, rngs, stride=1, dilation=1):
        v = _normal(rngs, (cout, cin, kernel))
        self.weight_g = CodecWeight(jax.device_put(_g_of(v)))
        self.weight_v = CodecWeight(jax.device_put(v))
        self.bias = CodecWeight(jax.device_put(np.zeros((cout,), np.float32)))
        self.stride, self.dilation = stride, dilation
        pad = (kernel - stride) * dilation // 2
        self.padding = (pad, pad)

    def __call__(self, x, mask=None):
        w = fold_weight_norm(self.weight_g[...], self.weight_v[...])
        return conv1d(
            _masked(x, mask),
            w,
            self.bias[...],
            stride=self.stride,
            dilation=self.dilation,
            padding=self.padding,
        )


class WNConvTranspose1d(nnx.Module):
    """Weight-normed ConvTranspose1d, padding ceil(s / 2), output_padding s % 2 (length L * s)."""

    def __init__(self, cin, cout, stride, *, rngs):
        v = _normal(rngs, (cin, cout, 2 * stride))
        self.weight_g = CodecWeight(jax.device_put(_g_of(v)))
        self.weight_v = CodecWeight(jax.device_put(v))
        self.bias = CodecWeight(jax.device_put(np.zeros((cout,), np.float32)))
        self.stride = stride

    def __call__(self, x, mask=None):
        w = fold_weight_norm(self.weight_g[...], self.weight_v[...])
        s = self.stride
        return conv_transpose1d(
            _masked(x, mask),
            w,
            self.bias[...],
            stride=s,
            padding=(s + 1) // 2,
            output_padding=s % 2,
        )


class CausalConv1d(nnx.Module):
    """Plain Conv1d with the release's causal "auto" padding (watermark branch)."""

    def __init__(self, cin, cout, kernel, *, rngs, stride=1):
        self.weight = CodecWeight(jax.device_put(_normal(rngs, (cout, cin, kernel))))
        self.bias = CodecWeight(jax.device_put(np.zeros((cout,), np.float32)))
        self.stride, self.kernel = stride, kernel

    def __call__(self, x):
        pad = causal_padding(x.shape[1], self.kernel, self.stride)
        return conv1d(x, self.weight[...], self.bias[...], stride=self.stride, padding=pad)


class CausalConvTranspose1d(nnx.Module):
    """Plain ConvTranspose1d, no padding, the last (k - stride) samples cut (length L * s)."""

    def __init__(self, cin, cout, stride, *, rngs):
        self.weight = CodecWeight(jax.device_put(_normal(rngs, (cin, cout, 2 * stride))))
        self.bias = CodecWeight(jax.device_put(np.zeros((cout,), np.float32)))
        self.stride = stride

    def __call__(self, x):
        y = conv_transpose1d(x, self.weight[...], self.bias[...], stride=self.stride)
        return y[:, : x.shape[1] * self.stride]


class ResidualUnit(nnx.Module):
    """[Snake, WNConv k7 dilation d, Snake, WNConv k1] + identity (main path)."""

    def __init__(self, dim: int, dilation: int, *, rngs):
        self.snake1 = Snake(dim)
        self.conv1 = WNConv1d(dim, dim, 7, dilation=dilation, rngs=rngs)
        self.snake2 = Snake(dim)
        self.conv2 = WNConv1d(dim, dim, 1, rngs=rngs)

    def __call__(self, x, mask=None):
        y = self.conv1(self.snake1(x), mask)
        y = self.conv2(self.snake2(y), mask)
        return x + y


class ELUUnit(nnx.Module):
    """[ELU, causal Conv k3 dim -> dim/2, ELU, Conv k1 dim/2 -> dim] + identity (watermark)."""

    def __init__(self, dim: int, *, rngs):
        self.conv1 = CausalConv1d(dim, dim // 2, 3, rngs=rngs)
        self.conv2 = CausalConv1d(dim // 2, dim, 1, rngs=rngs)

    def __call__(self, x):
        y = self.conv1(jax.nn.elu(x))
        y = self.conv2(jax.nn.elu(y))
        return x + y


class LSTM(nnx.Module):
    """Multi-layer unidirectional LSTM (PyTorch's parameters and gate order), state from 0."""

    def __init__(self, dim: int, num_layers: int, *, rngs):
        bound = 1.0 / math.sqrt(dim)

        def uniform(shape):
            if rngs is None:
                return np.zeros(shape, np.float32)
            return rngs.uniform(-bound, bound, shape).astype(np.float32)

        def weights(shape):
            return nnx.List(
                [CodecWeight(jax.device_put(uniform(shape))) for _ in range(num_layers)]
            )

        self.weight_ih = weights((4 * dim, dim))
        self.weight_hh = weights((4 * dim, dim))
        self.bias_ih = weights((4 * dim,))
        self.bias_hh = weights((4 * dim,))
        self.dim = dim

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (B, T, dim) -> (B, T, dim), computed in float32."""
        in_dtype = x.dtype
        h_seq = jnp.swapaxes(x.astype(jnp.float32), 0, 1)
        for w_ih, w_hh, b_ih, b_hh in zip(
            self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        ):
            gates_x = h_seq @ w_ih[...].T + (b_ih[...] + b_hh[...])
            w_hh_t = w_hh[...].T

            def step(carry, gx, w_hh_t=w_hh_t):
                h, c = carry
                i, f, g, o = jnp.split(gx + h @ w_hh_t, 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h

            zeros = jnp.zeros(h_seq.shape[1:2] + (self.dim,), jnp.float32)
            _, h_seq = jax.lax.scan(step, (zeros, zeros), gates_x)
        return jnp.swapaxes(h_seq, 0, 1).astype(in_dtype)


def num_params(module: nnx.Module) -> int:
    return int(sum(np.prod(v.shape) for v in jax.tree.leaves(nnx.state(module, CodecWeight))))
