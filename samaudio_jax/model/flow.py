"""SAMAudioFlow: the release's wrapper around the DiT (input projection, video, spans, memory).

Order: concat([x_t, zeros, mixture]) -> proj -> align_masked_video -> embed_anchors -> DiT,
with memory = memory_proj(text) + S(t) (S(t) alone, (B, 1, D), without text).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from samaudio_jax.config_checks import HEADS, validate_model_fields  # noqa: F401 (HEADS: public)
from samaudio_jax.model import layers as L
from samaudio_jax.model.dit import DiT, timestep_frequencies

NULL_ANCHOR, PAD_ANCHOR = 0, 3


def null_anchors(batch: int, length: int, audio_pad_mask: jax.Array | None):
    """The release's anchors without spans: ids [<null>, <pad>], alignment 0 (1 on padding)."""
    ids = jnp.tile(jnp.array([[NULL_ANCHOR, PAD_ANCHOR]], jnp.int32), (batch, 1))
    if audio_pad_mask is None:
        alignment = jnp.zeros((batch, length), jnp.int32)
    else:
        alignment = jnp.where(audio_pad_mask.astype(bool), 0, 1).astype(jnp.int32)
    return ids, alignment


class AlignMaskedVideo(nnx.Module):
    """x + tanh(gate) * LayerNorm(Conv1d_k1(video)); video (B, video_dim, T)."""

    def __init__(self, video_dim: int, dim: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.conv = L.Dense(
            video_dim,
            dim,
            axes=("conv_in", "embed"),
            use_bias=True,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.layer_norm = L.LayerNorm(dim, param_dtype=param_dtype)
        self.gate = L.make_param(rngs, L.zeros_init, (1,), (None,), param_dtype)

    def __call__(self, x: jax.Array, video: jax.Array) -> jax.Array:
        v = self.layer_norm(self.conv(jnp.swapaxes(video, 1, 2)))
        return x + jnp.tanh(self.gate[...].astype(x.dtype)) * v.astype(x.dtype)


class EmbedAnchors(nnx.Module):
    """x + tanh(gate) * proj(embed[anchor_ids[b, alignment[b, t]]]); row <pad> gets no gradient."""

    def __init__(self, num_anchors: int, emb_dim: int, dim: int, *, dtype, param_dtype, rngs):
        def embed_init(key, shape, dt):
            table = jax.random.normal(key, shape, dt)
            return table.at[PAD_ANCHOR].set(0.0)

        self.embed = L.make_param(
            rngs, embed_init, (num_anchors + 1, emb_dim), (None, None), param_dtype
        )
        self.proj = L.Dense(
            emb_dim, dim, axes=(None, "embed"), dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.gate = L.make_param(rngs, L.zeros_init, (1,), (None,), param_dtype)

    def __call__(self, x: jax.Array, anchor_ids: jax.Array, alignment: jax.Array) -> jax.Array:
        table = self.embed[...]
        is_pad = (jnp.arange(table.shape[0]) == PAD_ANCHOR)[:, None]
        table = jnp.where(is_pad, jax.lax.stop_gradient(table), table)
        ids = jnp.take_along_axis(anchor_ids.astype(jnp.int32), alignment.astype(jnp.int32), axis=1)
        e = self.proj(table[ids])
        return x + jnp.tanh(self.gate[...].astype(x.dtype)) * e.astype(x.dtype)


class SAMAudioFlow(nnx.Module):
    """The SAM Audio flow network: velocity (or clean) prediction for x_t (B, T, 2L).

    Built from config.model (config_schema.model_defaults). Parameters carry logical axis
    names; without an active mesh eager sharding is switched off so building always works.
    """

    def __init__(self, config_model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        cfg = config_model
        _validate(cfg)
        if jax.sharding.get_abstract_mesh().empty:
            with nnx.use_eager_sharding(False):
                self._build(cfg, rngs)
        else:
            self._build(cfg, rngs)

    def _build(self, cfg, rngs: nnx.Rngs):
        dt, pdt = L.resolve_dtype(cfg.dtype), L.resolve_dtype(cfg.param_dtype)
        kw = dict(dtype=dt, param_dtype=pdt, rngs=rngs)
        d = cfg.dim
        self.dtype = dt
        self.dim = d
        self.latent_dim = int(cfg.latent_dim)
        self.video_dim = int(cfg.video_dim)
        self.head = str(cfg.head)
        self.text_to_adaln = bool(cfg.text_to_adaln)
        self.dropout_rate = float(cfg.dropout)
        self.mixture_magnitude = bool(cfg.get("mixture_magnitude", False))
        # The log-magnitude view adds latent_dim input channels (not a release layout).
        n_in = cfg.in_channels + (self.latent_dim if self.mixture_magnitude else 0)
        self.proj = L.Dense(n_in, d, axes=("latent", "embed"), use_bias=True, **kw)
        self.align_masked_video = AlignMaskedVideo(cfg.video_dim, d, **kw)
        self.embed_anchors = EmbedAnchors(cfg.num_anchors, cfg.anchor_embedding_dim, d, **kw)
        self.memory_proj = L.Dense(cfg.text_dim, d, axes=(None, "embed"), use_bias=True, **kw)
        out = 3 * self.latent_dim if self.head == "gated_mix" else cfg.out_channels
        self.transformer = DiT(cfg, out, rngs=rngs)
        self.dropout_rngs = nnx.Rngs(dropout=rngs.dropout())

    def __call__(
        self,
        noisy_audio: jax.Array,
        audio_features: jax.Array,
        text_features: jax.Array | None,
        text_mask: jax.Array | None,
        time: jax.Array,
        masked_video_features: jax.Array | None = None,
        anchor_ids: jax.Array | None = None,
        anchor_alignment: jax.Array | None = None,
        audio_pad_mask: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Returns (B, T, 2L) in float32. Masks are boolean, True = valid / attend.

        Dropout runs only with deterministic=False, drawing from `rngs` (or the model's own
        stream) 'dropout'.
        """
        b, t, _ = noisy_audio.shape
        dt = self.dtype
        x = jnp.concatenate([noisy_audio, jnp.zeros_like(audio_features), audio_features], axis=-1)
        if self.mixture_magnitude:
            x = jnp.concatenate([x, mixture_log_magnitude(audio_features, self.latent_dim)], -1)
        x = self.proj(x.astype(dt))
        if masked_video_features is None:
            masked_video_features = jnp.zeros((b, self.video_dim, t), dt)
        x = self.align_masked_video(x, masked_video_features)
        if anchor_ids is None or anchor_alignment is None:
            if (anchor_ids is None) != (anchor_alignment is None):
                raise ValueError("anchor_ids and anchor_alignment must be given together")
            anchor_ids, anchor_alignment = null_anchors(b, t, audio_pad_mask)
        x = self.embed_anchors(x, anchor_ids, anchor_alignment)

        s_t = timestep_frequencies(time, self.dim)[:, None, :]  # S(t): dim is even
        t_extra = None
        if text_features is None:
            memory, memory_mask = s_t, None
        else:
            text = self.memory_proj(text_features.astype(dt))
            memory = text + s_t.astype(text.dtype)
            memory_mask = text_mask
            if self.text_to_adaln:
                w = (
                    jnp.ones(text.shape[:2], jnp.float32)
                    if text_mask is None
                    else text_mask.astype(jnp.float32)
                )
                pooled = jnp.sum(text.astype(jnp.float32) * w[..., None], axis=1)
                t_extra = pooled / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1.0)

        dropout_key = None
        if not deterministic and self.dropout_rate > 0:
            dropout_key = (rngs or self.dropout_rngs).dropout()
        pad = None if audio_pad_mask is None else audio_pad_mask.astype(bool)
        mem_mask = None if memory_mask is None else memory_mask.astype(bool)
        out = self.transformer(
            x, time, pad, memory, mem_mask, t_extra=t_extra, dropout_key=dropout_key
        ).astype(jnp.float32)
        if self.head == "gated_mix":
            n = self.latent_dim
            m, d_t, d_r = out[..., :n], out[..., n : 2 * n], out[..., 2 * n :]
            mix = audio_features[..., :n].astype(jnp.float32)
            gate = jax.nn.sigmoid(m)
            out = jnp.concatenate([gate * mix + d_t, (1 - gate) * mix + d_r], axis=-1)
        return out


def mixture_log_magnitude(audio_features: jax.Array, latent_dim: int) -> jax.Array:
    """log(|mixture| + 0.01) per latent channel: (B, T, 2L) -> (B, T, L).

    A mask per latent bin depends on each bin's energy, which a linear projection of the
    signed latents into a narrower embedding cannot recover bin by bin; this view hands it
    over. 0.01 floors silent bins (latents are scaled to about unit RMS per bin).
    """
    mix = audio_features[..., :latent_dim].astype(jnp.float32)
    return jnp.log(jnp.abs(mix) + 0.01)


def _validate(cfg: ml_collections.ConfigDict) -> None:
    """config.model's rules (config_checks.py, the one place they live)."""
    validate_model_fields(cfg)
