"""mlx-audio's SAM Audio port holding release-layout flow weights: the independent reference
for the flow network (tests/test_model_parity_mlx.py) and the baseline of
bench/flow_forward.py."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn
from mlx_audio.sts.models.sam_audio.align import EmbedAnchors as MlxEmbedAnchors
from mlx_audio.sts.models.sam_audio.config import TransformerConfig
from mlx_audio.sts.models.sam_audio.model import SAMAudio, SinusoidalEmbedding
from mlx_audio.sts.models.sam_audio.transformer import DiT as MlxDiT


def mlx_reference(m, state):
    """mlx-audio's SAMAudio wrapper with only the flow parts, weights via sanitize + load_weights."""
    tc = TransformerConfig(
        dim=m.dim,
        n_heads=m.num_heads,
        n_layers=m.num_layers,
        dropout=0.0,
        norm_eps=m.norm_eps,
        qk_norm=m.qk_norm,
        max_positions=m.max_positions,
        frequency_embedding_dim=m.frequency_embedding_dim,
        context_dim=m.dim,
        out_channels=m.out_channels,
        multiple_of=m.multiple_of,
        ffn_exp=m.ffn_exp,
    )
    ref = SAMAudio.__new__(SAMAudio)
    mnn.Module.__init__(ref)
    ref.transformer = MlxDiT(tc)
    ref.proj = mnn.Linear(m.in_channels, m.dim)
    ref.embed_anchors = MlxEmbedAnchors(m.num_anchors, m.anchor_embedding_dim, m.dim)
    ref.memory_proj = mnn.Linear(m.text_dim, m.dim)
    ref.timestep_emb = SinusoidalEmbedding(m.dim)
    weights = SAMAudio.sanitize({k: mx.array(v) for k, v in state.items()})
    ref.load_weights(list(weights.items()), strict=True)
    return ref
