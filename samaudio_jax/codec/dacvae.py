"""DACVAE, the release's audio codec, in Flax NNX (inference only).

Encode = reflect-pad each waveform to a multiple of the hop, encoder, `quantizer.in_proj`
(1x1 conv to 2 * latent_dim), keep the first half (the mean; no sampling).
Decode = `quantizer.out_proj`, the decoder's main path, then tanh(WNConv(Snake(x))).

Watermark: the release's decoder always adds a watermark (with random message bits
unless given). Here it is a switch, `watermark` (config.codec.watermark, default False,
like the MLX port): when off, decode returns the main path's waveform y0 (what the
exporter and the sampler use by default); when on, y0 + 0.25 * h with an explicit
16-bit `message` (default all zeros), so decoding is deterministic. Watermark weights
are always present so checkpoints import and export whole.

Sizes are configurable (the release: encoder_dim 64, encoder_rates (2, 8, 10, 12),
encoder_hidden_dim 1024, latent_dim 128, decoder_dim 1536, decoder_rates (12, 10, 8, 2),
wm_rates (8, 5, 4, 2)) so tests can use small widths. The watermark widths follow from
the decoder's: hidden = decoder_dim / 3, channels = last decoder width / 3.

`seed=None` builds zero-filled weights: a cheap target for importing a checkpoint
(or for inspecting shapes), not to be run before weights are imported.

Batches of unequal lengths: pass `num_samples` (encode) or `num_frames` (decode); every
convolution then sees zeros outside each example, so the result equals encoding or
decoding each example alone (frames / samples past the end are zeroed).
`samaudio_jax.codec.chunked.decode_chunked` decodes long latents in windows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.codec.base import Codec
from samaudio_jax.codec.chunked import decode_chunked
from samaudio_jax.codec.dacvae_layers import (
    CausalConv1d,
    CausalConvTranspose1d,
    ELUUnit,
    ResidualUnit,
    Snake,
    WNConv1d,
    WNConvTranspose1d,
)
from samaudio_jax.codec.watermark import Watermarker, apply_watermark

DILATIONS = (1, 3, 9)


def _mask_at(frame_mask, rate: int, dtype):
    """(B, T) frame mask -> (B, T * rate, 1) at `rate` samples per frame (None passes)."""
    if frame_mask is None:
        return None
    return jnp.repeat(frame_mask.astype(dtype), rate, axis=1)[..., None]


class EncoderBlock(nnx.Module):
    """`encoder.block.{i}`: three residual units on dim/2, Snake, WNConv(k 2s, stride s)."""

    def __init__(self, dim: int, stride: int, *, rngs):
        self.res_units = nnx.List([ResidualUnit(dim // 2, d, rngs=rngs) for d in DILATIONS])
        self.snake = Snake(dim // 2)
        self.down = WNConv1d(dim // 2, dim, 2 * stride, stride=stride, rngs=rngs)

    def __call__(self, x, mask=None):
        for unit in self.res_units:
            x = unit(x, mask)
        return self.down(self.snake(x), mask)


class Encoder(nnx.Module):
    """`encoder.block`: WNConv(1 -> d, k7), blocks doubling width, Snake, WNConv(k3)."""

    def __init__(self, dim: int, rates, hidden_dim: int, *, rngs):
        self.stem = WNConv1d(1, dim, 7, rngs=rngs)
        blocks = []
        for stride in rates:
            dim *= 2
            blocks.append(EncoderBlock(dim, stride, rngs=rngs))
        self.blocks = nnx.List(blocks)
        self.snake = Snake(dim)
        self.proj = WNConv1d(dim, hidden_dim, 3, rngs=rngs)
        self.rates = tuple(rates)

    def __call__(self, wav, frame_mask=None):
        """wav (B, N, 1), N a multiple of the hop -> (B, N / hop, hidden_dim)."""
        rate = math.prod(self.rates)
        x = self.stem(wav, _mask_at(frame_mask, rate, wav.dtype))
        for block, stride in zip(self.blocks, self.rates):
            x = block(x, _mask_at(frame_mask, rate, x.dtype))
            rate //= stride
        return self.proj(self.snake(x), _mask_at(frame_mask, 1, x.dtype))


class DecoderBlock(nnx.Module):
    """`decoder.model.{i}`. Main path: block.0 Snake, block.1 WNConvTranspose (x s),
    residual units block.4/.5/.8. Watermark layers: block.3 causal transposed conv and
    block.6 ELU unit ("downsample group"); block.7 ELU unit and block.11 strided causal
    conv ("upsample group"); ELU at block.2 / block.10 has no weights."""

    def __init__(self, in_dim, out_dim, stride, wm_stride, *, rngs):
        self.snake = Snake(in_dim)
        self.up = WNConvTranspose1d(in_dim, out_dim, stride, rngs=rngs)
        self.res_units = nnx.List([ResidualUnit(out_dim, d, rngs=rngs) for d in DILATIONS])
        wm_in, wm_out = in_dim // 3, out_dim // 3
        self.wm_raise_conv = CausalConvTranspose1d(wm_in, wm_out, wm_stride, rngs=rngs)
        self.wm_raise_unit = ELUUnit(wm_out, rngs=rngs)
        self.wm_lower_unit = ELUUnit(wm_out, rngs=rngs)
        self.wm_lower_conv = CausalConv1d(wm_out, wm_in, 2 * wm_stride, stride=wm_stride, rngs=rngs)
        self.stride = stride

    def __call__(self, x, mask_in=None, mask_out=None):
        x = self.up(self.snake(x), mask_in)
        for unit in self.res_units:
            x = unit(x, mask_out)
        return x

    def wm_raise(self, h):
        """The release's "downsample_group" (raises the rate): ELU, block.3, block.6."""
        return self.wm_raise_unit(self.wm_raise_conv(jax.nn.elu(h)))

    def wm_lower(self, h):
        """The release's "upsample_group" (lowers the rate): block.7, ELU, block.11."""
        return self.wm_lower_conv(jax.nn.elu(self.wm_lower_unit(h)))


class Decoder(nnx.Module):
    """`decoder`: model.0 WNConv(k7), model.1.. DecoderBlocks, and `wm_model`."""

    def __init__(self, in_dim, dim, rates, wm_rates, msg_dim, nbits, lstm_layers, *, rngs):
        self.stem = WNConv1d(in_dim, dim, 7, rngs=rngs)
        self.blocks = nnx.List(
            [
                DecoderBlock(dim // 2**i, dim // 2 ** (i + 1), s, ws, rngs=rngs)
                for i, (s, ws) in enumerate(zip(rates, wm_rates))
            ]
        )
        last = dim // 2 ** len(rates)
        self.wm_model = Watermarker(
            last, last // 3, dim // 3, msg_dim, nbits, lstm_layers, rngs=rngs
        )
        self.rates = tuple(rates)

    def features(self, z, frame_mask=None):
        """(B, T, in_dim) -> the last block's features (B, T * hop, C_last)."""
        rate = 1
        x = self.stem(z, _mask_at(frame_mask, 1, z.dtype))
        for block, stride in zip(self.blocks, self.rates):
            mask_in = _mask_at(frame_mask, rate, x.dtype)
            rate *= stride
            x = block(x, mask_in, _mask_at(frame_mask, rate, x.dtype))
        return x

    def __call__(self, z, frame_mask=None, message=None, alpha: float = 0.25):
        hop = math.prod(self.rates)
        x = self.features(z, frame_mask)
        y = self.wm_model.encoder_block.waveform(x, _mask_at(frame_mask, hop, x.dtype))
        if message is not None:
            y = apply_watermark(self.wm_model, list(self.blocks), y, message, alpha)
        return y


class DacVaeCodec(Codec):
    """The DACVAE codec behind the `Codec` interface. See the module docstring."""

    def __init__(
        self,
        sample_rate: int = 48000,
        encoder_dim: int = 64,
        encoder_rates=(2, 8, 10, 12),
        encoder_hidden_dim: int = 1024,
        latent_dim: int = 128,
        decoder_dim: int = 1536,
        decoder_rates=(12, 10, 8, 2),
        wm_rates=(8, 5, 4, 2),
        wm_msg_dim: int = 128,
        wm_nbits: int = 16,
        wm_lstm_layers: int = 2,
        wm_alpha: float = 0.25,
        watermark: bool = False,
        dtype: str = "float32",
        seed: int = 0,
    ):
        if any(s % 2 for s in encoder_rates):
            raise ValueError(
                f"encoder_rates: the release's padding (k - s) // 2 gives N / hop frames only "
                f"for even strides, got {tuple(encoder_rates)}"
            )
        if math.prod(encoder_rates) != math.prod(decoder_rates):
            raise ValueError(
                f"decoder_rates {tuple(decoder_rates)}: product must equal the encoder hop "
                f"{math.prod(encoder_rates)}"
            )
        if len(wm_rates) != len(decoder_rates) or math.prod(decoder_rates) % math.prod(wm_rates):
            raise ValueError(
                f"wm_rates {tuple(wm_rates)}: need one per decoder block and a product dividing "
                f"the hop {math.prod(decoder_rates)}"
            )
        last = decoder_dim // 2 ** len(decoder_rates)
        if decoder_dim % (3 * 2 ** len(decoder_rates)) or (last // 3) % 2:
            raise ValueError(
                f"decoder_dim {decoder_dim}: the watermark widths need decoder_dim divisible "
                f"by 3 * 2^{len(decoder_rates)} and an even last width / 3"
            )
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"codec.dtype: expected 'float32' or 'bfloat16', got {dtype!r}")
        rngs = None if seed is None else np.random.default_rng(seed)
        self.sample_rate = int(sample_rate)
        self.hop_length = math.prod(encoder_rates)
        self.latent_dim = int(latent_dim)
        self.encoder = Encoder(encoder_dim, encoder_rates, encoder_hidden_dim, rngs=rngs)
        self.in_proj = WNConv1d(encoder_hidden_dim, 2 * latent_dim, 1, rngs=rngs)
        self.out_proj = WNConv1d(latent_dim, encoder_hidden_dim, 1, rngs=rngs)
        self.decoder = Decoder(
            encoder_hidden_dim,
            decoder_dim,
            decoder_rates,
            wm_rates,
            wm_msg_dim,
            wm_nbits,
            wm_lstm_layers,
            rngs=rngs,
        )
        self.watermark = bool(watermark)
        self.wm_alpha = float(wm_alpha)
        self.wm_nbits = int(wm_nbits)
        self.dtype = jnp.dtype(dtype)

    def _frame_mask(self, lengths, num_frames, hop):
        if lengths is None:
            return None
        return jnp.arange(num_frames)[None, :] < (-(-jnp.asarray(lengths) // hop))[:, None]

    def pad_to_hop(self, wav, num_samples=None):
        """Reflect-pad each example at its own end to a multiple of the hop: (B, T * hop)."""
        b, n = wav.shape
        hop = self.hop_length
        total = self.num_frames(n) * hop
        if num_samples is None:
            return jnp.pad(wav, ((0, 0), (0, total - n)), mode="reflect")
        lengths = jnp.asarray(num_samples)[:, None]
        idx = jnp.arange(total)[None, :]
        period = jnp.maximum(2 * (lengths - 1), 1)
        folded = jnp.abs((idx % period + period) % period)
        folded = jnp.where(folded >= lengths, period - folded, folded)
        src = jnp.where(idx < lengths, idx, folded)
        padded = jnp.take_along_axis(
            jnp.pad(wav, ((0, 0), (0, total - n))), jnp.clip(src, 0, total - 1), axis=1
        )
        return padded

    def encode(self, wav, num_samples=None):
        """(B, N) -> (B, ceil(N / hop), latent_dim); `num_samples` (B,) for padded batches."""
        wav = wav.astype(self.dtype)
        x = self.pad_to_hop(wav, num_samples)[..., None]
        fmask = self._frame_mask(num_samples, x.shape[1] // self.hop_length, self.hop_length)
        z = self.encoder(x, fmask)
        mean = self.in_proj(z)[..., : self.latent_dim]
        if fmask is not None:
            mean = mean * fmask[..., None].astype(mean.dtype)
        return mean.astype(jnp.float32)

    def decode(self, latents, num_frames=None, message=None):
        """(B, T, latent_dim) -> (B, T * hop). `num_frames` (B,) for padded batches;
        `message` (B, nbits) of 0/1 used when the watermark is on (default zeros)."""
        fmask = None
        if num_frames is not None:
            fmask = jnp.arange(latents.shape[1])[None, :] < jnp.asarray(num_frames)[:, None]
        return self.decode_masked(latents, fmask, message)

    def decode_masked(self, latents, frame_mask=None, message=None):
        """Decode with an arbitrary (B, T) bool frame mask (False frames act as absent)."""
        z = latents.astype(self.dtype)
        fm = None if frame_mask is None else frame_mask[..., None].astype(z.dtype)
        z = self.out_proj(z, fm)
        if self.watermark and message is None:
            message = jnp.zeros((z.shape[0], self.wm_nbits), jnp.int32)
        msg = message if self.watermark else None
        y = self.decoder(z, frame_mask, msg, self.wm_alpha)[..., 0].astype(jnp.float32)
        if frame_mask is not None:
            y = y * jnp.repeat(frame_mask, self.hop_length, axis=1).astype(y.dtype)
        return y

    def decode_chunked(self, latents, chunk_frames, overlap_frames, fade_frames=None, message=None):
        """`decode` in overlapping windows (bounded memory); see codec/chunked.py."""
        return decode_chunked(
            self, latents, chunk_frames, overlap_frames, fade_frames=fade_frames, message=message
        )
