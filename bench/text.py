"""Prompts/s of the NNX T5 encoder (jitted, CPU) against transformers' T5EncoderModel (torch).

Both run t5-base-sized random weights (the same weights) on this machine's CPU, on the same
batch of random token ids with padding. Prints the median over --runs timed runs of each,
after warm-up (compilation excluded), and the ratio ours / torch.

    PYTHONPATH=. python bench/text.py [--batch 8] [--length 32] [--runs 5] [--layers 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import T5Config, T5EncoderModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, median_seconds  # noqa: E402
from samaudio_jax.text.t5_config import T5_PRESETS  # noqa: E402
from samaudio_jax.text.t5_import import t5_network_from_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()

    base = T5_PRESETS["t5-base"]
    hf_cfg = T5Config(
        vocab_size=base.vocab_size,
        d_model=base.d_model,
        d_kv=base.d_kv,
        d_ff=base.d_ff,
        num_layers=args.layers,
        num_heads=base.num_heads,
        feed_forward_proj=base.feed_forward_proj,
        dropout_rate=0.0,
    )
    torch.manual_seed(0)
    torch_model = T5EncoderModel(hf_cfg).eval()
    weights = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    cfg = dataclasses.replace(base, num_layers=args.layers).validate()
    network = t5_network_from_weights(cfg, weights.__getitem__, weights.__contains__)

    rng = np.random.default_rng(0)
    ids = rng.integers(2, base.vocab_size, size=(args.batch, args.length)).astype(np.int32)
    lengths = rng.integers(args.length // 2, args.length + 1, size=args.batch)
    mask = np.arange(args.length)[None, :] < lengths[:, None]

    graphdef, state = nnx.split(network)
    run = jax.jit(lambda st, i, m: nnx.merge(graphdef, st)(i, m))
    jids, jmask = jnp.asarray(ids), jnp.asarray(mask)
    tids, tmask = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))

    def ours():
        return run(state, jids, jmask).block_until_ready()

    def reference():
        with torch.inference_mode():
            return torch_model(input_ids=tids, attention_mask=tmask).last_hidden_state

    err = np.abs(np.asarray(ours()) - reference().numpy()).max()
    t_ours = median_seconds(ours, args.runs)
    t_ref = median_seconds(reference, args.runs)
    print(machine_facts())
    print(
        f"T5 encoder: {args.layers} layers, d_model {base.d_model}, batch {args.batch} x "
        f"{args.length} tokens"
    )
    print(f"{'impl':<22}{'median s/batch':>16}{'prompts/s':>12}")
    print(f"{'samaudio_jax (jit)':<22}{t_ours:>16.4f}{args.batch / t_ours:>12.1f}")
    print(f"{'transformers (torch)':<22}{t_ref:>16.4f}{args.batch / t_ref:>12.1f}")
    print(f"ratio ours/torch (prompts/s): {t_ref / t_ours:.2f}   max |diff|: {err:.2e}")


if __name__ == "__main__":
    main()
