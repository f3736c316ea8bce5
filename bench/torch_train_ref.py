"""A plain PyTorch (eager) SAM Audio flow network and train step, for timing comparisons.

Follows SPEC.md: proj(768 -> D) on [x_t | 0 | mix], align_masked_video (conv k=1, LayerNorm,
tanh gate), embed_anchors, x_embedder ResNet block, t embedder (frequency + SwiGLU),
t_block, blocks of adaLN self-attention (QK RMSNorm, RoPE on adjacent pairs), ungated
cross-attention to memory = memory_proj(text) + S(t), SwiGLU FFN, final adaLN + linear.
The step: flow-matching MSE over valid frames, backward, global-norm clip, AdamW.
Written for speed comparisons only; weights are random.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(
            x
        ) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, d_in, hidden, d_out):
        super().__init__()
        self.w1 = nn.Linear(d_in, hidden, bias=False)
        self.w3 = nn.Linear(d_in, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_out, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def rope(x, theta=20000.0):
    """x (B, H, T, hd): rotate adjacent pairs (2i, 2i + 1)."""
    t, hd = x.shape[-2], x.shape[-1]
    freqs = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.arange(t, dtype=torch.float32)[:, None] * freqs[None]
    cos, sin = ang.cos(), ang.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, dim, heads, use_rope):
        super().__init__()
        self.h, self.hd, self.use_rope = heads, dim // heads, use_rope
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.q_norm, self.k_norm = RMSNorm(self.hd), RMSNorm(self.hd)

    def split(self, x):  # head_dim-major: channel c -> head c % H
        b, t, _ = x.shape
        return x.view(b, t, self.hd, self.h).permute(0, 3, 1, 2)

    def forward(self, x, ctx, key_mask):
        q, k, v = self.split(self.wq(x)), self.split(self.wk(ctx)), self.split(self.wv(ctx))
        q, k = self.q_norm(q), self.k_norm(k)
        if self.use_rope:
            q, k = rope(q), rope(k)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, h, t, d = o.shape
        return self.wo(o.transpose(1, 2).reshape(b, t, h * d))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        hidden = 64 * math.ceil(int(2 * 4 * dim / 3) / 64)
        self.attention_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)
        self.attention = Attention(dim, heads, True)
        self.cross_attention = Attention(dim, heads, False)
        self.feed_forward = SwiGLU(dim, hidden, dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(self, x, y, t0, pad, mem_mask):
        b = x.shape[0]
        sh_a, sc_a, g_a, sh_f, sc_f, g_f = (self.scale_shift_table[None] + t0.view(b, 6, -1)).chunk(
            6, 1
        )
        a_in = self.attention_norm(x) * (1 + sc_a) + sh_a
        h = x + g_a * self.attention(a_in, a_in, pad)
        h = h + self.cross_attention(h, y, mem_mask)
        return h + g_f * self.feed_forward(self.ffn_norm(h) * (1 + sc_f) + sh_f)


def sinusoid(t, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    a = t[:, None].float() * f[None]
    return torch.cat([a.cos(), a.sin()], -1)


class ResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.n1, self.n2 = nn.GroupNorm(1, dim), nn.GroupNorm(1, dim)
        self.c1, self.c2 = nn.Conv1d(dim, dim, 3, padding=1), nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x):  # (B, D, T)
        return x + self.c2(F.silu(self.n2(self.c1(F.silu(self.n1(x))))))


class TorchFlow(nn.Module):
    def __init__(self, m):
        super().__init__()
        d = m.dim
        self.dim, self.freq = d, m.frequency_embedding_dim
        self.proj = nn.Linear(m.in_channels, d)
        self.video_conv, self.video_norm = nn.Conv1d(m.video_dim, d, 1), nn.LayerNorm(d)
        self.video_gate = nn.Parameter(torch.zeros(1))
        self.anchor_embed = nn.Embedding(m.num_anchors + 1, m.anchor_embedding_dim, padding_idx=3)
        self.anchor_proj = nn.Linear(m.anchor_embedding_dim, d, bias=False)
        self.anchor_gate = nn.Parameter(torch.zeros(1))
        self.memory_proj = nn.Linear(m.text_dim, d)
        self.x_embedder = ResBlock(d)
        self.t_embedder = SwiGLU(m.frequency_embedding_dim, d, d)
        self.t_block = nn.Linear(d, 6 * d)
        self.y_embedder = SwiGLU(d, d, d)
        self.layers = nn.ModuleList(Block(d, m.num_heads) for _ in range(m.num_layers))
        self.norm = RMSNorm(d)
        self.final_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        self.output = nn.Linear(d, m.out_channels, bias=False)

    def forward(self, x_t, mix2, text, text_mask, t, video, anchor_ids, align, pad):
        x = self.proj(torch.cat([x_t, torch.zeros_like(mix2), mix2], -1))
        v = self.video_norm(self.video_conv(video).transpose(1, 2))
        x = x + torch.tanh(self.video_gate) * v
        ids = torch.gather(anchor_ids, 1, align)
        x = x + torch.tanh(self.anchor_gate) * self.anchor_proj(self.anchor_embed(ids))
        x = self.x_embedder(x.transpose(1, 2)).transpose(1, 2)
        t_emb = self.t_embedder(sinusoid(t, self.freq))
        t0 = self.t_block(F.silu(t_emb))
        s_t = sinusoid(t, self.dim)[:, None]
        y = self.y_embedder(s_t if text is None else self.memory_proj(text) + s_t)
        for layer in self.layers:
            x = layer(x, y, t0, pad, text_mask)
        shift, scale = (self.final_table[None] + t_emb[:, None]).chunk(2, 1)
        return self.output(self.norm(x) * (1 + scale) + shift)


def make_step(model, lr=1e-4, clip=1.0, weight_decay=0.1):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(batch):
        x1, mix2, valid = batch["x1"], batch["mix2"], batch["valid"]
        t = torch.rand(x1.shape[0])
        x0 = torch.randn_like(x1)
        tt = t[:, None, None]
        x_t = (1 - tt) * x0 + tt * x1
        pred = model(
            x_t,
            mix2,
            batch.get("text"),
            batch.get("text_mask"),
            t,
            batch["video"],
            batch["anchor_ids"],
            batch["align"],
            valid,
        )
        w = valid[..., None].float()
        loss = ((pred - (x1 - x0)) ** 2 * w).sum() / (w.sum() * x1.shape[-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss.item()

    return step
