"""A compact PyTorch (eager) SAM Audio flow network, written from SPEC.md, for benchmarks and
parity tests.

`TorchSAMAudioFlow(**sizes)` is the release's wrapper (proj, align_masked_video,
embed_anchors, memory_proj) around its DiT; its state-dict names are the release's
(`proj.weight`, `transformer.layers.0.attention.wq.weight`, ...), so a release
checkpoint.pt (minus `audio_codec.*` and `vision_encoder.*`) loads into it.
`TorchSAMAudioFlow.from_config(config.model)` takes the sizes from our ConfigDict.

Call: `net(noisy (B,T,2L), features (B,T,2L), time (B,), text (B,S,Dt)|None,
text_mask (B,S) bool|None, video (B,Dv,T)|None, anchor_ids (B,K)|None,
anchor_alignment (B,T)|None, audio_mask (B,T) bool True=valid|None) -> velocity (B,T,2L)`.
`padding_aware_groupnorm=True` takes the x_embedder GroupNorm statistics over valid frames
only (our option; the release normalises over padded frames too).

`sample_midpoint(net, noise, ..., steps)` integrates with torchdiffeq's midpoint rule from
t=0 to 1 with step 1/steps, as the release does (step 2/32 = 16 steps).

Importable from the repository root as `bench.torch_dit` (tests and bench/separate.py use it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x), no biases."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.w1 = nn.Linear(dim_in, hidden, bias=False)
        self.w3 = nn.Linear(dim_in, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim_out, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Projection(nn.Module):
    """Holds a SwiGLU under `.projection` (the release's embedder naming)."""

    def __init__(self, dim_in: int, dim: int, norm: bool = False, eps: float = 1e-5):
        super().__init__()
        self.norm = RMSNorm(dim_in, eps) if norm else None
        self.projection = SwiGLU(dim_in, dim, dim)

    def forward(self, x):
        return self.projection(self.norm(x) if self.norm is not None else x)


def rope_tables(length: int, head_dim: int, theta: float):
    freqs = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * freqs[None]
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, cos, sin):
    """x (B, H, T, hd): rotate adjacent pairs (2i, 2i+1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out0 = x0 * cos - x1 * sin
    out1 = x0 * sin + x1 * cos
    return torch.stack([out0, out1], dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool, eps: float, context_dim=None):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        context_dim = context_dim or dim
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(context_dim, dim, bias=False)
        self.wv = nn.Linear(context_dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim, eps) if qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, eps) if qk_norm else None

    def split(self, x):
        b, t, _ = x.shape  # channel c -> head c % H, position c // H
        return x.reshape(b, t, self.head_dim, self.heads).permute(0, 3, 1, 2)

    def forward(self, x, context=None, key_mask=None, rope=None):
        context = x if context is None else context
        q, k, v = self.split(self.wq(x)), self.split(self.wk(context)), self.split(self.wv(context))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, h, t, d = out.shape
        return self.wo(out.transpose(1, 2).reshape(b, t, h * d))


class Block(nn.Module):
    def __init__(self, dim, heads, ffn_hidden, qk_norm, eps):
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = Attention(dim, heads, qk_norm, eps)
        self.cross_attention = Attention(dim, heads, qk_norm, eps)
        self.ffn_norm = RMSNorm(dim, eps)
        self.feed_forward = SwiGLU(dim, ffn_hidden, dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(self, x, t0, context, context_mask, audio_mask, rope):
        b = x.shape[0]
        mods = self.scale_shift_table[None] + t0.reshape(b, 6, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.chunk(6, dim=1)
        h = self.attention_norm(x) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * self.attention(h, key_mask=audio_mask, rope=rope)
        x = x + self.cross_attention(x, context, key_mask=context_mask)
        h = self.ffn_norm(x) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * self.feed_forward(h)


class ConvUnit(nn.Module):
    """GroupNorm(1 group) -> SiLU -> Conv1d(k=3, zero padding 1 | 1) on (B, D, T); padding-aware:
    statistics over valid frames and the conv input zeroed on padded frames."""

    def __init__(self, dim: int, padding_aware: bool):
        super().__init__()
        self.groupnorm = nn.GroupNorm(1, dim)
        self.project = nn.Conv1d(dim, dim, 3)
        self.padding_aware = padding_aware

    def forward(self, x, mask):
        if self.padding_aware and mask is not None:
            m = mask[:, None, :].to(x.dtype)
            count = m.sum(dim=(1, 2), keepdim=True) * x.shape[1]
            mean = (x * m).sum(dim=(1, 2), keepdim=True) / count
            var = (((x - mean) * m) ** 2).sum(dim=(1, 2), keepdim=True) / count
            x = (x - mean) * torch.rsqrt(var + self.groupnorm.eps)
            x = x * self.groupnorm.weight[None, :, None] + self.groupnorm.bias[None, :, None]
            return self.project(F.pad(F.silu(x) * m, (1, 1)))
        return self.project(F.pad(F.silu(self.groupnorm(x)), (1, 1)))


class ResBlock(nn.Module):
    def __init__(self, dim, padding_aware):
        super().__init__()
        self.block1 = ConvUnit(dim, padding_aware)
        self.block2 = ConvUnit(dim, padding_aware)

    def forward(self, x, mask):
        return x + self.block2(self.block1(x, mask), mask)


class XEmbedder(nn.Module):
    def __init__(self, dim, padding_aware):
        super().__init__()
        self.block = ResBlock(dim, padding_aware)

    def forward(self, x, mask):  # (B, T, D) -> (B, T, D)
        return self.block(x.transpose(1, 2), mask).transpose(1, 2)


def frequency_embedding(t, dim: int, max_period: float = 10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class DiT(nn.Module):
    def __init__(self, dim, layers, heads, out_channels, freq_dim, ffn_hidden, qk_norm, eps,
                 max_positions, context_norm, padding_aware):  # fmt: skip
        super().__init__()
        self.freq_dim = freq_dim
        self.theta = max(10000.0, 2.0 * max_positions)
        self.head_dim = dim // heads
        self.x_embedder = XEmbedder(dim, padding_aware)
        self.t_embedder = Projection(freq_dim, dim)
        self.t_block = nn.Linear(dim, 6 * dim, bias=True)
        self.y_embedder = Projection(dim, dim, norm=context_norm, eps=eps)
        self.layers = nn.ModuleList(
            [Block(dim, heads, ffn_hidden, qk_norm, eps) for _ in range(layers)]
        )
        self.norm = RMSNorm(dim, eps)
        self.final_layer_scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.output = nn.Linear(dim, out_channels, bias=False)

    def forward(self, x, time, audio_mask, context, context_mask):
        x = self.x_embedder(x, audio_mask)
        t_emb = self.t_embedder(frequency_embedding(time, self.freq_dim))
        t0 = self.t_block(F.silu(t_emb))
        y = self.y_embedder(context)
        rope = rope_tables(x.shape[1], self.head_dim, self.theta)
        for layer in self.layers:
            x = layer(x, t0, y, context_mask, audio_mask, rope)
        shift, scale = (self.final_layer_scale_shift_table[None] + t_emb[:, None]).chunk(2, dim=1)
        return self.output(self.norm(x) * (1 + scale) + shift)


class AlignMaskedVideo(nn.Module):
    def __init__(self, video_dim, dim):
        super().__init__()
        self.conv = nn.Conv1d(video_dim, dim, 1)
        self.layer_norm = nn.LayerNorm(dim)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, video):
        return x + torch.tanh(self.gate) * self.layer_norm(self.conv(video).transpose(1, 2))


class EmbedAnchors(nn.Module):
    def __init__(self, num_anchors, anchor_dim, dim):
        super().__init__()
        self.embed = nn.Embedding(num_anchors + 1, anchor_dim, padding_idx=num_anchors)
        self.proj = nn.Linear(anchor_dim, dim, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, anchor_ids, alignment):
        emb = self.embed(anchor_ids)  # (B, K, A)
        per_frame = torch.gather(emb, 1, alignment[..., None].expand(-1, -1, emb.shape[-1]))
        return x + torch.tanh(self.gate) * self.proj(per_frame)


class TorchSAMAudioFlow(nn.Module):
    def __init__(self, dim=2816, num_layers=22, num_heads=22, out_channels=256, in_channels=768,
                 text_dim=768, video_dim=1024, num_anchors=3, anchor_embedding_dim=128,
                 frequency_embedding_dim=256, ffn_exp=4, multiple_of=64, norm_eps=1e-5,
                 qk_norm=True, max_positions=10000, context_norm=False,
                 padding_aware_groupnorm=False):  # fmt: skip
        super().__init__()
        self.dim = dim
        self.video_dim = video_dim
        ffn_hidden = multiple_of * math.ceil(int(2 * ffn_exp * dim / 3) / multiple_of)
        self.proj = nn.Linear(in_channels, dim)
        self.align_masked_video = AlignMaskedVideo(video_dim, dim)
        self.embed_anchors = EmbedAnchors(num_anchors, anchor_embedding_dim, dim)
        self.memory_proj = nn.Linear(text_dim, dim)
        self.transformer = DiT(
            dim, num_layers, num_heads, out_channels, frequency_embedding_dim, ffn_hidden,
            qk_norm, norm_eps, max_positions, context_norm, padding_aware_groupnorm,
        )  # fmt: skip

    @classmethod
    def from_config(cls, m, **overrides):
        """Sizes from our config.model ConfigDict."""
        keys = ("dim", "num_layers", "num_heads", "out_channels", "in_channels", "text_dim",
                "video_dim", "num_anchors", "anchor_embedding_dim", "frequency_embedding_dim",
                "ffn_exp", "multiple_of", "norm_eps", "qk_norm", "max_positions",
                "context_norm", "padding_aware_groupnorm")  # fmt: skip
        kwargs = {k: m[k] for k in keys}
        kwargs.update(overrides)
        return cls(**kwargs)

    def forward(self, noisy, features, time, text=None, text_mask=None, video=None,
                anchor_ids=None, anchor_alignment=None, audio_mask=None):  # fmt: skip
        b, t, _ = noisy.shape
        x = self.proj(torch.cat([noisy, torch.zeros_like(noisy), features], dim=-1))
        if video is None:
            video = x.new_zeros(b, self.video_dim, t)
        x = self.align_masked_video(x, video)
        if anchor_ids is None:  # the release's null anchors: <null> on frames, <pad> on padding
            anchor_ids = torch.tensor([[0, 3]]).expand(b, 2)
            anchor_alignment = torch.zeros(b, t, dtype=torch.long)
            if audio_mask is not None:
                anchor_alignment = (~audio_mask).long()
        x = self.embed_anchors(x, anchor_ids, anchor_alignment)
        memory = frequency_embedding(time, self.dim)[:, None]
        if text is not None:
            memory = self.memory_proj(text) + memory
        else:
            text_mask = None
        return self.transformer(x, time, audio_mask, memory, text_mask)


@torch.inference_mode()
def sample_midpoint(net, noise, features, steps=16, **conditioning):
    """torchdiffeq midpoint from t=0 (noise) to t=1 with step 1/steps; returns x at t=1."""
    import torchdiffeq

    batch = noise.shape[0]

    def field(t, x):
        return net(x, features, t.expand(batch), **conditioning)

    times = torch.tensor([0.0, 1.0])
    return torchdiffeq.odeint(
        field, noise, times, method="midpoint", options={"step_size": 1.0 / steps}
    )[-1]
