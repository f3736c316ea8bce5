"""A plain-PyTorch DACVAE written from SPEC.md's description, for tests only.

Its module tree reproduces the release's `audio_codec.*` state-dict names (after the
prefix), so its state_dict() is a stand-in release checkpoint, and its forward pass is
an independent reference for the NNX port, the watermark branch included. Weight norm
is folded here with its own code (old-style weight_g / weight_v parameters).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Snake(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, c, 1))

    def forward(self, x):
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x) ** 2


def _wn(g, v):
    return g * v / v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class WNConv(nn.Module):
    """Weight-normed Conv1d, symmetric padding (k - stride) * dilation // 2."""

    def __init__(self, cin, cout, k, stride=1, dilation=1):
        super().__init__()
        v = torch.randn(cout, cin, k) * 0.02
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1).clone())
        self.weight_v = nn.Parameter(v)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.dilation, self.pad = stride, dilation, (k - stride) * dilation // 2

    def forward(self, x):
        w = _wn(self.weight_g, self.weight_v)
        return F.conv1d(x, w, self.bias, self.stride, self.pad, self.dilation)


class WNConvT(nn.Module):
    """Weight-normed ConvTranspose1d (k 2s), padding ceil(s/2), output_padding s % 2."""

    def __init__(self, cin, cout, s):
        super().__init__()
        v = torch.randn(cin, cout, 2 * s) * 0.02
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1).clone())
        self.weight_v = nn.Parameter(v)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.s = s

    def forward(self, x):
        w = _wn(self.weight_g, self.weight_v)
        s = self.s
        return F.conv_transpose1d(x, w, self.bias, s, math.ceil(s / 2), s % 2)


class CausalConv(nn.Conv1d):
    """Conv1d, left padding k - s, right padding so that ceil(L / s) frames come out."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__(cin, cout, k, stride=stride)

    def forward(self, x):
        k, s, n = self.kernel_size[0], self.stride[0], x.shape[-1]
        right = math.ceil(n / s) * s - n
        return super().forward(F.pad(x, (k - s, right)))


class CausalConvT(nn.ConvTranspose1d):
    """ConvTranspose1d (k 2s), no padding, the last k - s samples dropped."""

    def __init__(self, cin, cout, s):
        super().__init__(cin, cout, 2 * s, stride=s)

    def forward(self, x):
        y = super().forward(x)
        return y[..., : y.shape[-1] - (self.kernel_size[0] - self.stride[0])]


class ResUnit(nn.Module):
    def __init__(self, c, d):
        super().__init__()
        self.block = nn.Sequential(Snake(c), WNConv(c, c, 7, dilation=d), Snake(c), WNConv(c, c, 1))

    def forward(self, x):
        return x + self.block(x)


class EluUnit(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block = nn.Sequential(
            nn.ELU(), CausalConv(c, c // 2, 3), nn.ELU(), CausalConv(c // 2, c, 1)
        )

    def forward(self, x):
        return x + self.block(x)


class EncBlock(nn.Module):
    def __init__(self, dim, s):
        super().__init__()
        h = dim // 2
        self.block = nn.Sequential(
            ResUnit(h, 1), ResUnit(h, 3), ResUnit(h, 9), Snake(h), WNConv(h, dim, 2 * s, stride=s)
        )

    def forward(self, x):
        return self.block(x)


class DecBlock(nn.Module):
    def __init__(self, cin, cout, s, ws):
        super().__init__()
        self.block = nn.ModuleList(
            [
                Snake(cin),
                WNConvT(cin, cout, s),
                nn.ELU(),
                CausalConvT(cin // 3, cout // 3, ws),
                ResUnit(cout, 1),
                ResUnit(cout, 3),
                EluUnit(cout // 3),
                EluUnit(cout // 3),
                ResUnit(cout, 9),
                nn.Identity(),
                nn.ELU(),
                CausalConv(cout // 3, cin // 3, 2 * ws, stride=ws),
            ]
        )

    def forward(self, x):
        for i in (0, 1, 4, 5, 8):
            x = self.block[i](x)
        return x

    def lower_rate(self, h):  # the release's "upsample group"
        return self.block[11](self.block[10](self.block[7](h)))

    def raise_rate(self, h):  # the release's "downsample group"
        return self.block[6](self.block[3](self.block[2](h)))


class LSTMBlock(nn.Module):
    def __init__(self, h, layers):
        super().__init__()
        self.lstm = nn.LSTM(h, h, layers)

    def forward(self, x):  # (B, C, T)
        seq = x.permute(2, 0, 1)
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)


class MsgProcessor(nn.Module):
    def __init__(self, nbits, d):
        super().__init__()
        self.msg_processor = nn.Embedding(2 * nbits, d)

    def forward(self, h, msg):
        idx = 2 * torch.arange(msg.shape[1]) + msg.long()
        return h + self.msg_processor(idx).sum(1)[..., None]


class WmEncoderBlock(nn.Module):
    def __init__(self, c, wc, hidden, d, layers):
        super().__init__()
        self.pre = nn.Sequential(Snake(c), WNConv(c, 1, 7), nn.Tanh(), CausalConv(1, wc, 7))
        self.post = nn.Sequential(LSTMBlock(hidden, layers), nn.ELU(), CausalConv(hidden, d, 7))


class WmDecoderBlock(nn.Module):
    def __init__(self, d, wc, hidden, layers):
        super().__init__()
        self.pre = nn.Sequential(CausalConv(d, hidden, 7), LSTMBlock(hidden, layers))
        self.post = nn.Sequential(nn.ELU(), CausalConv(wc, 1, 7))


class Watermarker(nn.Module):
    def __init__(self, c, wc, hidden, d, nbits, layers):
        super().__init__()
        self.encoder_block = WmEncoderBlock(c, wc, hidden, d, layers)
        self.msg_processor = MsgProcessor(nbits, d)
        self.decoder_block = WmDecoderBlock(d, wc, hidden, layers)


class Decoder(nn.Module):
    def __init__(self, cin, dim, rates, wm_rates, d, nbits, layers):
        super().__init__()
        blocks = [WNConv(cin, dim, 7)]
        for i, (s, ws) in enumerate(zip(rates, wm_rates)):
            blocks.append(DecBlock(dim // 2**i, dim // 2 ** (i + 1), s, ws))
        self.model = nn.ModuleList(blocks)
        last = dim // 2 ** len(rates)
        self.wm_model = Watermarker(last, last // 3, dim // 3, d, nbits, layers)

    def forward(self, z, message=None, alpha=0.25):
        x = z
        for m in self.model:
            x = m(x)
        pre = self.wm_model.encoder_block.pre
        y0 = pre[2](pre[1](pre[0](x)))
        if message is None:
            return y0
        h = pre[3](y0)
        for block in reversed(list(self.model)[1:]):
            h = block.lower_rate(h)
        h = self.wm_model.encoder_block.post(h)
        h = self.wm_model.msg_processor(h, message)
        h = self.wm_model.decoder_block.pre(h)
        for block in list(self.model)[1:]:
            h = block.raise_rate(h)
        h = self.wm_model.decoder_block.post(h)
        return y0 + alpha * h


class Bottleneck(nn.Module):
    def __init__(self, hidden, latent):
        super().__init__()
        self.in_proj = WNConv(hidden, 2 * latent, 1)
        self.out_proj = WNConv(latent, hidden, 1)


class Encoder(nn.Module):
    def __init__(self, dim, rates, hidden):
        super().__init__()
        layers = [WNConv(1, dim, 7)]
        for s in rates:
            dim *= 2
            layers.append(EncBlock(dim, s))
        layers += [Snake(dim), WNConv(dim, hidden, 3)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class DacVae(nn.Module):
    def __init__(self, enc_dim, enc_rates, hidden, latent, dec_dim, dec_rates, wm_rates, d, nbits):
        super().__init__()
        self.encoder = Encoder(enc_dim, enc_rates, hidden)
        self.quantizer = Bottleneck(hidden, latent)
        self.decoder = Decoder(hidden, dec_dim, dec_rates, wm_rates, d, nbits, 2)
        self.hop = math.prod(enc_rates)
        self.latent = latent

    def encode(self, wav):  # (B, N) -> (B, latent, T)
        n = wav.shape[-1]
        pad = (-n) % self.hop
        x = F.pad(wav[:, None], (0, pad), mode="reflect") if pad else wav[:, None]
        return self.quantizer.in_proj(self.encoder(x))[:, : self.latent]

    def decode(self, lat, message=None):  # (B, latent, T) -> (B, T * hop)
        return self.decoder(self.quantizer.out_proj(lat), message)[:, 0]


class Release(nn.Module):
    """The release's wrapper: weights under `model.`."""

    def __init__(self, **kw):
        super().__init__()
        self.model = DacVae(**kw)


def perturb_(module: nn.Module, seed: int = 0) -> None:
    """Move every weight away from its init (biases 0, alphas 1, g = ||v||)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.rand(p.shape, generator=gen)
            if name.endswith("alpha"):
                p.copy_(0.5 + 1.5 * r)
            elif name.endswith("weight_g"):
                p.mul_(0.5 + r)
            elif name.endswith("bias") or "bias_" in name:
                p.copy_(0.2 * (r - 0.5))
            else:
                p.add_(0.01 * (r - 0.5))
