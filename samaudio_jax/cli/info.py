"""`samaudio-jax info`: a config's flow network, its parameter counts (built abstractly), and
optionally one forward pass on random inputs.

  samaudio-jax info --config configs/large.py
  samaudio-jax info --config configs/tiny.py --forward
"""

from __future__ import annotations

import argparse

from samaudio_jax.cli.config_loader import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment config file (configs/*.py)")
    parser.add_argument(
        "--forward",
        action="store_true",
        help="also build the model for real and run one forward pass on random inputs",
    )
    parser.add_argument("--frames", type=int, default=25, help="latent frames for --forward")
    parser.add_argument("--batch", type=int, default=1, help="batch size for --forward")


def _fmt(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from samaudio_jax.model import layers
    from samaudio_jax.model.summary import parameter_bytes, parameter_counts

    config = load_config(args.config, overrides)
    m = config.model
    hidden = layers.ffn_hidden_dim(m.dim, m.ffn_exp, m.multiple_of)
    print(f"config: {config.name} ({args.config})")
    magnitude = ", log|mixture| input" if m.get("mixture_magnitude") else ""
    print(
        f"flow network: dim {m.dim}, layers {m.num_layers}, heads {m.num_heads} "
        f"(head_dim {m.dim // m.num_heads}), ffn {hidden}, latent {m.latent_dim} x 2, "
        f"head {m.head}{magnitude}, dtype {m.dtype} / params {m.param_dtype}, "
        f"scan {m.scan_layers}, "
        f"remat {m.remat_policy}"
    )
    counts = parameter_counts(m)
    width = max(len(k) for k in counts)
    print("parameters:")
    for part, n in counts.items():
        if part != "total":
            print(f"  {part:<{width}}  {n:>14,d}  {_fmt(n):>8}")
    print(f"  {'total':<{width}}  {counts['total']:>14,d}  {_fmt(counts['total']):>8}")
    print(f"parameter memory: {parameter_bytes(m) / 2**30:.3f} GiB ({m.param_dtype})")
    if args.forward:
        _forward(m, args.batch, args.frames, config.seed)
    return 0


def _forward(m, batch: int, frames: int, seed: int) -> None:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from samaudio_jax.model import SAMAudioFlow

    if batch < 1 or frames < 1:
        raise ValueError("--batch and --frames must be at least 1")
    model = SAMAudioFlow(m, rngs=nnx.Rngs(seed))
    keys = jax.random.split(jax.random.key(seed), 3)
    c = m.out_channels
    noisy = jax.random.normal(keys[0], (batch, frames, c))
    features = jax.random.normal(keys[1], (batch, frames, c))
    text = jax.random.normal(keys[2], (batch, 4, m.text_dim))
    text_mask = jnp.ones((batch, 4), bool)
    time = jnp.full((batch,), 0.5)
    out = nnx.jit(lambda mdl, *a: mdl(*a))(model, noisy, features, text, text_mask, time)
    print(f"forward: input {tuple(noisy.shape)} -> output {tuple(out.shape)} {out.dtype}")
