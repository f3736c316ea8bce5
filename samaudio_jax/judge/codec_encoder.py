"""The DACVAE encoder half the Judge and PE-A-Frame read audio with: the project's codec
encoder (codec/dacvae.py) and `in_proj`, keeping the mean half, as the release's
DACVAEEncoder does. `out_proj` is held only so the release's weights import and export whole.

transformers' PE-Audio DAC encoder is the same network with weight norm folded into plain
convolutions and `bottleneck` = the mean half of `in_proj` (tests/test_judge_models.py runs
transformers' PeAudioEncoder on these weights).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.codec.dacvae import Encoder
from samaudio_jax.codec.dacvae_layers import WNConv1d
from samaudio_jax.judge.config import CodecEncoderConfig


class CodecEncoder(nnx.Module):
    def __init__(self, cfg: CodecEncoderConfig, seed: int | None = 0):
        if any(s % 2 for s in cfg.encoder_rates):
            raise ValueError(f"encoder_rates: even strides needed, got {cfg.encoder_rates}")
        rng = None if seed is None else np.random.default_rng(seed)
        self.encoder = Encoder(cfg.encoder_dim, cfg.encoder_rates, cfg.latent_dim, rngs=rng)
        self.in_proj = WNConv1d(cfg.latent_dim, 2 * cfg.codebook_dim, 1, rngs=rng)
        self.out_proj = WNConv1d(cfg.codebook_dim, cfg.latent_dim, 1, rngs=rng)
        self.hop_length = cfg.hop_length
        self.codebook_dim = cfg.codebook_dim

    def __call__(self, wav, frame_mask=None):
        """(B, N) -> (B, ceil(N / hop), codebook_dim); the end reflect-padded to the hop.
        With a (B, T) valid-frame mask every convolution sees zeros outside it (the codec's
        masked mode: a padded example encodes as it would alone)."""
        extra = -wav.shape[1] % self.hop_length
        if extra:
            wav = jnp.pad(wav, ((0, 0), (0, extra)), mode="reflect")
        z = self.encoder(wav[..., None].astype(jnp.float32), frame_mask)
        m = None if frame_mask is None else frame_mask[..., None].astype(z.dtype)
        return self.in_proj(z, m)[..., : self.codebook_dim]
