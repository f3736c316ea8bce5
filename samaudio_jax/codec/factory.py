"""Build the configured codec from the `codec` section of the experiment config."""

from __future__ import annotations

import math

from samaudio_jax.codec.base import Codec


def build_codec(cfg) -> Codec:
    """`cfg` is config.codec. kind "frames" -> FrameDCTCodec, "dacvae" -> DacVaeCodec.

    A DACVAE built here has random weights unless `cfg.checkpoint` names a release dir or
    checkpoint file holding audio_codec.* (loaded with checkpoint.codec_keys).
    """
    kind = cfg.kind
    if kind == "frames":
        from samaudio_jax.codec import frames

        if cfg.latent_dim != cfg.hop_length:
            raise ValueError(
                f"codec.latent_dim: the frames codec has one latent per sample of a frame, so "
                f"latent_dim must equal codec.hop_length ({cfg.hop_length}), got {cfg.latent_dim}"
            )
        scale = None
        if cfg.latent_scale:
            scale = frames.load_latent_scale(cfg.latent_scale, cfg.hop_length)
        return frames.FrameDCTCodec(cfg.sample_rate, cfg.hop_length, latent_scale=scale)
    if kind == "dacvae":
        from samaudio_jax.codec import dacvae

        hop = math.prod(cfg.encoder_rates)
        if hop != cfg.hop_length:
            raise ValueError(
                f"codec.hop_length: {cfg.hop_length} differs from the product of "
                f"codec.encoder_rates {tuple(cfg.encoder_rates)} = {hop}"
            )
        codec = dacvae.DacVaeCodec(
            sample_rate=cfg.sample_rate,
            encoder_dim=cfg.encoder_dim,
            encoder_rates=tuple(cfg.encoder_rates),
            encoder_hidden_dim=cfg.encoder_hidden_dim,
            latent_dim=cfg.latent_dim,
            decoder_dim=cfg.decoder_dim,
            decoder_rates=tuple(cfg.decoder_rates),
            wm_rates=tuple(cfg.wm_rates),
            wm_msg_dim=cfg.wm_msg_dim,
            watermark=cfg.watermark,
            dtype=cfg.dtype,
            seed=None if cfg.checkpoint else 0,
        )
        if cfg.checkpoint:
            from samaudio_jax.checkpoint import codec_keys

            codec_keys.load_codec_checkpoint(codec, cfg.checkpoint)
        return codec
    raise ValueError(f"codec.kind: expected 'dacvae' or 'frames', got {kind!r}")
