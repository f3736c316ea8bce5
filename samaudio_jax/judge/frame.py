"""PE-A-Frame in Flax NNX: frame-level audio-text scores, and the release's spans from them.

Audio: codec features (B, T, codebook_dim) -- the DACVAE latents, which the release passes
from SAM Audio's own codec, or `encode` of a waveform with the model's DAC encoder -- go
through `data_proj` and the PE-AV transformer (padded frames masked), then `audio_head`
(LayerNorm, bias-free projection). Text: ModernBERT at `nth_text_layer`, token 0, through
`text_head`. The logit of frame t is <audio_t, text> * logit_scale + logit_bias (both used
as stored, not exponentiated). `spans_from_logits` keeps the runs of frames whose sigmoid is
above the threshold (the release's 0.3) and turns frame indices into seconds at the hop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.judge.codec_encoder import CodecEncoder
from samaudio_jax.judge.config import FrameConfig
from samaudio_jax.judge.modernbert import ModernBert
from samaudio_jax.judge.pe_audio import PeTransformer

THRESHOLD = 0.3


class ContrastiveHead(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs):
        self.layer_norm = nnx.LayerNorm(din, epsilon=1e-6, rngs=rngs)
        self.proj = nnx.Linear(din, dout, use_bias=False, rngs=rngs)

    def __call__(self, x):
        return self.proj(self.layer_norm(x))


class FrameModel(nnx.Module):
    def __init__(self, cfg: FrameConfig, *, rngs: nnx.Rngs, codec_seed: int | None = 0):
        h = cfg.audio_transformer.hidden_size
        self.cfg = cfg
        self.audio_codec = CodecEncoder(cfg.codec, seed=codec_seed)
        self.data_proj = nnx.Linear(cfg.codec.codebook_dim, h, rngs=rngs)
        self.transformer = PeTransformer(cfg.audio_transformer, rngs=rngs)
        self.text_model = ModernBert(cfg.text_model, rngs=rngs)
        self.text_head = ContrastiveHead(cfg.text_model.hidden_size, cfg.output_dim, rngs=rngs)
        self.audio_head = ContrastiveHead(h, cfg.output_dim, rngs=rngs)
        self.logit_scale = nnx.Param(jnp.zeros((1,), jnp.float32))
        self.logit_bias = nnx.Param(jnp.zeros((1,), jnp.float32))

    def encode(self, wav):
        """(B, N) waveforms at the codec rate -> codec features (B, ceil(N / hop), C)."""
        return self.audio_codec(wav)

    def audio_states(self, features, frame_mask=None):
        """Codec features (B, T, C) -> the transformer's frame states (B, T, H)."""
        states, _ = self.transformer(self.data_proj(features), frame_mask)
        return states

    def text_embeds(self, input_ids, attention_mask):
        state = self.text_model.hidden_state(input_ids, attention_mask, self.cfg.nth_text_layer)
        return self.text_head(state[:, 0])

    def __call__(self, input_ids, attention_mask, features, frame_mask=None):
        """-> (B, T) logits of each frame against its own item's text."""
        audio = self.audio_head(self.audio_states(features, frame_mask))
        text = self.text_embeds(input_ids, attention_mask)
        logits = jnp.einsum("btd,bd->bt", audio, text)
        return logits * self.logit_scale[...] + self.logit_bias[...]


def spans_from_logits(
    logits: np.ndarray,
    num_frames: int,
    hop_length: int,
    sample_rate: int,
    threshold: float = THRESHOLD,
) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of frames (among the first `num_frames`) with
    sigmoid(logit) > threshold; a run ending at frame e (exclusive) ends at e * hop / rate."""
    probs = np.asarray(jax.nn.sigmoid(jnp.asarray(logits[:num_frames], jnp.float32)))
    active = np.concatenate([[False], probs > threshold, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))
    seconds = hop_length / sample_rate
    # rounded to the microsecond: 35 * 0.01 prints as 0.35, not 0.35000000000000003
    return [(round(float(s * seconds), 6), round(float(e * seconds), 6))
            for s, e in zip(edges[::2], edges[1::2])]  # fmt: skip
