"""The DACVAE decoder's watermark branch (`decoder.wm_model` plus each decoder block's
watermark layers), inference only.

Given the main decoder's last features x (B, L, C_last):
  y0 = tanh(WNConv(C_last -> 1, k7)(Snake(x)))                  encoder_block.pre.{0,1}
  h  = causal Conv(1 -> C_w, k7)(y0)                              encoder_block.pre.3
  h  = each block's "upsample group" in REVERSE block order:     block.7 ELU unit, ELU,
       causal strided Conv (rate / wm_stride)                    block.11
  h  = Conv(H -> D_m, k7)(ELU(LSTM(h) + h))                       encoder_block.post
  h += sum_i emb[2 i + bit_i]  (every step)                       msg_processor
  h  = LSTM(g) + g, g = Conv(D_m -> H, k7)(h)                     decoder_block.pre
  h  = each block's "downsample group" in FORWARD order:         ELU, causal transposed
       conv (rate * wm_stride) block.3, block.6 ELU unit
  h  = Conv(C_w -> 1, k7)(ELU(h))                                 decoder_block.post.1
  out = y0 + alpha * h     (alpha = 32 / 128 = 0.25 in the release)
All convolutions here are causal except pre.1. With message=None the release draws
random bits; this port always takes the message as an argument (deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.codec.base import CodecWeight
from samaudio_jax.codec.dacvae_layers import LSTM, CausalConv1d, Snake, WNConv1d


class WatermarkEncoderBlock(nnx.Module):
    """`wm_model.encoder_block`: pre = Snake, WNConv -> 1 (+ tanh), causal Conv 1 -> C_w;
    post = LSTM (skip), ELU, causal Conv H -> D_m."""

    def __init__(self, in_dim, wm_channels, hidden, msg_dim, lstm_layers, *, rngs):
        self.snake = Snake(in_dim)
        self.to_wave = WNConv1d(in_dim, 1, 7, rngs=rngs)
        self.wave_in = CausalConv1d(1, wm_channels, 7, rngs=rngs)
        self.lstm = LSTM(hidden, lstm_layers, rngs=rngs)
        self.post_conv = CausalConv1d(hidden, msg_dim, 7, rngs=rngs)

    def waveform(self, x, mask=None):
        """The main path's output: tanh(WNConv(Snake(x))) -> (B, L, 1)."""
        return jnp.tanh(self.to_wave(self.snake(x), mask))

    def post(self, h):
        return self.post_conv(jax.nn.elu(self.lstm(h) + h))


class MessageEmbedding(nnx.Module):
    """`msg_processor.msg_processor`: Embedding(2 * nbits, D_m); bit i picks row 2 i + bit."""

    def __init__(self, nbits: int, dim: int, *, rngs):
        shape = (2 * nbits, dim)
        init = np.zeros(shape) if rngs is None else rngs.standard_normal(shape)
        self.weight = CodecWeight(jax.device_put(init.astype(np.float32)))
        self.nbits = nbits

    def __call__(self, message: jax.Array) -> jax.Array:
        """message (B, nbits) of 0/1 -> (B, D_m)."""
        idx = 2 * jnp.arange(self.nbits) + message.astype(jnp.int32)
        return jnp.take(self.weight[...], idx, axis=0).sum(axis=1)


class WatermarkDecoderBlock(nnx.Module):
    """`wm_model.decoder_block`: pre = causal Conv D_m -> H, LSTM (skip); post = ELU,
    causal Conv C_w -> 1."""

    def __init__(self, msg_dim, wm_channels, hidden, lstm_layers, *, rngs):
        self.pre_conv = CausalConv1d(msg_dim, hidden, 7, rngs=rngs)
        self.lstm = LSTM(hidden, lstm_layers, rngs=rngs)
        self.post_conv = CausalConv1d(wm_channels, 1, 7, rngs=rngs)

    def pre(self, h):
        g = self.pre_conv(h)
        return self.lstm(g) + g

    def post(self, h):
        return self.post_conv(jax.nn.elu(h))


class Watermarker(nnx.Module):
    """`decoder.wm_model`."""

    def __init__(self, in_dim, wm_channels, hidden, msg_dim, nbits, lstm_layers, *, rngs):
        self.encoder_block = WatermarkEncoderBlock(
            in_dim, wm_channels, hidden, msg_dim, lstm_layers, rngs=rngs
        )
        self.msg_processor = MessageEmbedding(nbits, msg_dim, rngs=rngs)
        self.decoder_block = WatermarkDecoderBlock(
            msg_dim, wm_channels, hidden, lstm_layers, rngs=rngs
        )


def apply_watermark(wm: Watermarker, blocks, y0, message, alpha: float):
    """The branch after y0 (B, L, 1): returns y0 + alpha * h. `blocks` are the decoder
    blocks (each with `wm_lower` / `wm_raise` methods), in forward order."""
    h = wm.encoder_block.wave_in(y0.astype(jnp.float32))
    for block in reversed(blocks):
        h = block.wm_lower(h)
    h = wm.encoder_block.post(h)
    h = h + wm.msg_processor(message)[:, None, :]
    h = wm.decoder_block.pre(h)
    for block in blocks:
        h = block.wm_raise(h)
    h = wm.decoder_block.post(h)
    return y0 + alpha * h.astype(y0.dtype)
