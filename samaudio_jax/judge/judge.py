"""SAM Audio Judge (SAJ) in Flax NNX: scores a separation against its mixture and text.

Mixture and separated audio are encoded together (stacked on the batch axis) by the DACVAE
encoder, projected (`data_proj`) and run through the PE-AV `transformer`; the two halves'
frames are concatenated (separated first) and projected to the bottleneck. The description's
ModernBERT state at `nth_text_layer`, token 0, goes through `text_proj1`, `text_proj2` and a
LayerNorm and is joined to every frame (`proj_audio_and_text`); the `finetune_transformer`
and a 4-way `head` give per-frame scores, averaged over valid frames and de-normalised with
the stored `mean` / `std`. Score order: overall, recall, precision, faithfulness.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from samaudio_jax.judge.codec_encoder import CodecEncoder
from samaudio_jax.judge.config import JudgeConfig
from samaudio_jax.judge.modernbert import ModernBert
from samaudio_jax.judge.pe_audio import PeTransformer

SCORES = ("overall", "recall", "precision", "faithfulness")


class Stat(nnx.Variable):
    """A stored, never-trained statistic (the score mean / std)."""


class JudgeModel(nnx.Module):
    def __init__(self, cfg: JudgeConfig, *, rngs: nnx.Rngs, codec_seed: int | None = 0):
        h, ft = cfg.transformer.hidden_size, cfg.finetune_transformer.hidden_size
        bn, text = cfg.bottleneck_dim, cfg.text_model.hidden_size
        self.cfg = cfg
        self.audio_codec = CodecEncoder(cfg.audio_codec, seed=codec_seed)
        self.data_proj = nnx.Linear(cfg.audio_codec.codebook_dim, h, rngs=rngs)
        self.transformer = PeTransformer(cfg.transformer, rngs=rngs)
        self.finetune_transformer = PeTransformer(cfg.finetune_transformer, rngs=rngs)
        self.text_model = ModernBert(cfg.text_model, rngs=rngs)
        self.cat_audio_proj = nnx.Linear(2 * h, bn, rngs=rngs)
        self.text_proj1 = nnx.Linear(text, h, use_bias=False, rngs=rngs)
        self.text_proj2 = nnx.Linear(h, bn, rngs=rngs)
        self.layer_norm = nnx.LayerNorm(bn, epsilon=1e-5, rngs=rngs)
        self.proj_audio_and_text = nnx.Linear(2 * bn, bn, rngs=rngs)
        self.finetune_data_proj = nnx.Linear(bn, ft, rngs=rngs)
        self.head = nnx.Linear(ft, 4, use_bias=False, rngs=rngs)
        self.mean = Stat(jnp.zeros((4,), jnp.float32))
        self.std = Stat(jnp.ones((4,), jnp.float32))

    def text_features(self, input_ids, attention_mask):
        state = self.text_model.hidden_state(input_ids, attention_mask, self.cfg.nth_text_layer)
        return self.text_proj1(state[:, 0])

    def __call__(self, input_ids, attention_mask, input_values, separated_values, padding_mask):
        """ids / mask (B, L); waveforms (B, N) at the codec rate, N a multiple of the hop;
        padding_mask (B, N) valid samples -> (B, 4) scores (see SCORES)."""
        b = input_values.shape[0]
        text = self.text_features(input_ids, attention_mask)
        hop = self.cfg.audio_codec.hop_length
        frame_mask = padding_mask[:, ::hop][:, : -(-input_values.shape[1] // hop)]
        stacked_mask = None
        if self.cfg.mask_padding:
            stacked_mask = jnp.concatenate([frame_mask, frame_mask], axis=0)
        wavs = jnp.concatenate([input_values, separated_values], axis=0)
        feats = self.audio_codec(wavs, stacked_mask)
        states, _ = self.transformer(self.data_proj(feats), stacked_mask)
        mix, sep = states[:b], states[b:]
        audio = self.cat_audio_proj(jnp.concatenate([sep, mix], axis=-1))
        text = self.layer_norm(self.text_proj2(text))
        text = jnp.broadcast_to(text[:, None], audio.shape)
        joint = self.proj_audio_and_text(jnp.concatenate([audio, text], axis=-1))
        ft_mask = frame_mask if self.cfg.mask_padding else None
        out, _ = self.finetune_transformer(self.finetune_data_proj(joint), ft_mask)
        per_frame = self.head(out).astype(jnp.float32)
        m = frame_mask[..., None].astype(jnp.float32)
        pooled = jnp.sum(per_frame * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
        return pooled * self.std[...] + self.mean[...]
