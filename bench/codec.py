"""DACVAE encode / decode time on this CPU: the NNX port (jitted) against transformers'
torch DacEncoder / DacDecoder holding the same weights (SAM Audio's full config:
64 / [2,8,10,12] / 1024 / 1536 / [12,10,8,2]; decode = main path, no watermark).

Run (heavy: ~108M params, several GB of activations; run it once):
  PYTHONPATH=. python bench/codec.py --seconds 10 --repeats 3
Prints median wall time of `repeats` runs after one warm-up (compile) run, the ratio
torch / jax, and the largest relative difference between the two outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import DacConfig
from transformers.models.dac.modeling_dac import DacDecoder, DacEncoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, median_seconds  # noqa: E402
from samaudio_jax.codec.base import jit_method  # noqa: E402
from samaudio_jax.codec.dacvae import DacVaeCodec  # noqa: E402
from samaudio_jax.codec.factory import export_codec_state  # noqa: E402


def _fold(sd, key):
    g, v = sd[key + ".weight_g"].astype(np.float64), sd[key + ".weight_v"].astype(np.float64)
    norm = np.sqrt((v**2).reshape(v.shape[0], -1).sum(1)).reshape(-1, 1, 1)
    return torch.from_numpy((g * v / norm).astype(np.float32))


def _res_unit(out, sd, dst, src):
    out[dst + ".snake1.alpha"] = torch.from_numpy(sd[src + ".block.0.alpha"])
    out[dst + ".snake2.alpha"] = torch.from_numpy(sd[src + ".block.2.alpha"])
    _conv(out, sd, dst + ".conv1", src + ".block.1")
    _conv(out, sd, dst + ".conv2", src + ".block.3")


def _conv(out, sd, dst, src):
    out[dst + ".weight"] = _fold(sd, src)
    out[dst + ".bias"] = torch.from_numpy(sd[src + ".bias"])


def transformers_modules(sd, n_blocks):
    """Release-named weights (numpy) -> transformers DacEncoder / DacDecoder (full config)."""
    cfg = DacConfig(
        encoder_hidden_size=64,
        downsampling_ratios=[2, 8, 10, 12],
        decoder_hidden_size=1536,
        codebook_dim=128,
    )
    cfg.upsampling_ratios = [12, 10, 8, 2]
    enc, dec = {}, {}
    _conv(enc, sd, "conv1", "model.encoder.block.0")
    for i in range(n_blocks):
        p = f"model.encoder.block.{i + 1}.block"
        for j in range(3):
            _res_unit(enc, sd, f"block.{i}.res_unit{j + 1}", f"{p}.{j}")
        enc[f"block.{i}.snake1.alpha"] = torch.from_numpy(sd[f"{p}.3.alpha"])
        _conv(enc, sd, f"block.{i}.conv1", f"{p}.4")
    enc["snake1.alpha"] = torch.from_numpy(sd[f"model.encoder.block.{n_blocks + 1}.alpha"])
    _conv(enc, sd, "conv2", f"model.encoder.block.{n_blocks + 2}")
    _conv(dec, sd, "conv1", "model.decoder.model.0")
    for i in range(n_blocks):
        p = f"model.decoder.model.{i + 1}.block"
        dec[f"block.{i}.snake1.alpha"] = torch.from_numpy(sd[f"{p}.0.alpha"])
        _conv(dec, sd, f"block.{i}.conv_t1", f"{p}.1")
        for j, idx in enumerate((4, 5, 8)):
            _res_unit(dec, sd, f"block.{i}.res_unit{j + 1}", f"{p}.{idx}")
    dec["snake1.alpha"] = torch.from_numpy(sd["model.decoder.wm_model.encoder_block.pre.0.alpha"])
    _conv(dec, sd, "conv2", "model.decoder.wm_model.encoder_block.pre.1")
    encoder, decoder = DacEncoder(cfg).eval(), DacDecoder(cfg).eval()
    encoder.load_state_dict(enc, strict=True)
    decoder.load_state_dict(dec, strict=True)
    return encoder, decoder


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    codec = DacVaeCodec()
    sd = export_codec_state(codec)
    t_enc, t_dec = transformers_modules(sd, 4)
    n = int(args.seconds * codec.sample_rate)
    wav = np.random.default_rng(0).uniform(-0.5, 0.5, (1, n)).astype(np.float32)
    frames = codec.num_frames(n)

    encode = jit_method(codec, "encode")
    graphdef, state = nnx.split(codec)

    @jax.jit
    def encoder_only(state, x):
        return nnx.merge(graphdef, state).encoder(x[..., None])

    @jax.jit
    def decoder_only(state, h):
        return nnx.merge(graphdef, state).decoder(h)[..., 0]

    def hidden(x):
        return encoder_only(state, x)

    def decode(h):
        return decoder_only(state, h)

    wav_j = jnp.asarray(wav)
    t0 = time.perf_counter()
    z_jax = np.asarray(jax.block_until_ready(hidden(wav_j)))
    compile_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_jax = np.asarray(jax.block_until_ready(decode(jnp.asarray(z_jax))))
    compile_dec = time.perf_counter() - t0

    x_t = torch.from_numpy(wav)[:, None]
    with torch.inference_mode():
        z_t = t_enc(x_t)
        y_t = t_dec(z_t)[:, 0].numpy()
    z_t = z_t.numpy().transpose(0, 2, 1)

    rows = []
    with torch.inference_mode():
        zt = torch.from_numpy(z_jax.transpose(0, 2, 1).copy())
        for name, jfn, tfn in (
            (
                "encode (encoder)",
                lambda: jax.block_until_ready(hidden(wav_j)),
                lambda: t_enc(x_t),
            ),
            (
                "decode (main path)",
                lambda: jax.block_until_ready(decode(jnp.asarray(z_jax))),
                lambda: t_dec(zt),
            ),
        ):
            tj = median_seconds(jfn, args.repeats)
            tt = median_seconds(tfn, args.repeats)
            rows.append((name, tj, tt))
    full = median_seconds(lambda: jax.block_until_ready(encode(wav_j)), 1)

    def rel(a, b):
        return float(np.abs(a - b).max() / np.abs(b).max())

    print(f"DACVAE full config, {args.seconds:g} s at {codec.sample_rate} Hz ({frames} frames),")
    print(machine_facts())
    print(f"{'op':<22}{'jax s':>10}{'torch s':>10}{'torch/jax':>11}")
    for name, tj, tt in rows:
        print(f"{name:<22}{tj:>10.2f}{tt:>10.2f}{tt / tj:>11.2f}")
    print(
        f"jax encode incl. in_proj: {full:.2f} s; first-call compile+run: encoder "
        f"{compile_enc:.1f} s, decoder {compile_dec:.1f} s"
    )
    print(f"max rel diff vs torch: encoder {rel(z_jax, z_t):.1e}, decoder {rel(y_jax, y_t):.1e}")


if __name__ == "__main__":
    main()
