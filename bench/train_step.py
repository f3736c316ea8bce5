"""Train-step time and examples/s of our jitted step (CPU) against plain PyTorch eager.

Both run the same network size (SPEC.md DiT + wrapper) and the same step on latent batches
(B, T frames): flow-matching loss over valid frames, backward, clipping, AdamW. No text
prompt on either side (memory = S(t)); spans and zero video on both. Median of --runs
timed steps after a warm-up (which compiles the JAX step).

    PYTHONPATH=. python bench/train_step.py [--configs tiny small] [--batch 2] [--frames 50]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import TrainStepBench, latent_batch, machine_facts, median_seconds  # noqa: E402
from bench.torch_train_ref import TorchFlow, make_step  # noqa: E402
from samaudio_jax.cli.config_loader import load_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def jax_step_seconds(config, b, t, runs):
    bench = TrainStepBench.build(config, b, t)
    return median_seconds(bench.run, runs), bench.param_count()


def jax_step_cost(config, b, t) -> str:
    """FLOPs and bytes of the same jitted step, compiled only (nothing allocated), from XLA's
    cost analysis with every loop iteration counted (parallel/hlo_cost.py)."""
    import dataclasses

    import jax

    from samaudio_jax.parallel import aot
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib
    from samaudio_jax.train import step as step_lib
    from samaudio_jax.train.inputs import no_codec

    config.train.global_batch_size = b
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    mesh = make_mesh(config.mesh, jax.devices()[:1])
    factories = dataclasses.replace(state_lib.ModuleFactories(), codec=no_codec, text=None)
    setup = state_lib.build_setup(config, mesh, factories)
    batch = latent_batch(config.model, b, t)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
    c = aot.loop_cost(step_lib.compile_train_step(setup, abstract))
    return (
        f"{c.flops / 1e9:.1f} GFLOP, {c.bytes_accessed / 1e9:.1f} GB accessed per step "
        f"(XLA alone, each loop body once: {c.xla_flops / 1e9:.1f} GFLOP, "
        f"{c.xla_bytes / 1e9:.1f} GB)"
    )


def torch_step_seconds(config, b, t, runs):
    m = config.model
    model = TorchFlow(m)
    step = make_step(model)
    nb = latent_batch(m, b, t)
    sr, hop = config.codec.sample_rate, config.codec.hop_length
    align = np.zeros((b, t), np.int64)
    lo, hi = int(np.ceil(0.1 * sr / hop)), int(np.ceil(0.5 * sr / hop))
    align[:, lo:hi] = 2
    align[~nb["valid"]] = 1
    batch = {
        "x1": torch.from_numpy(np.concatenate([nb["target_latent"], nb["residual_latent"]], -1)),
        "mix2": torch.from_numpy(np.concatenate([nb["mixture_latent"]] * 2, -1)),
        "valid": torch.from_numpy(nb["valid"]),
        "video": torch.zeros(b, m.video_dim, t),
        "anchor_ids": torch.tensor([[0, 3, 1, 3]] * b),
        "align": torch.from_numpy(align),
    }
    return median_seconds(lambda: step(batch), runs), sum(p.numel() for p in model.parameters())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--torch_threads",
        type=int,
        default=1,
        help="torch intra-op threads (on a busy 2-core host more than 1 made torch ~40x slower)",
    )
    p.add_argument(
        "--cost_only", action="store_true", help="print the JAX step's FLOPs and bytes; no runs"
    )
    args = p.parse_args()
    torch.set_num_threads(args.torch_threads)
    rows = []
    for name in args.configs:
        config = load_config(REPO / "configs" / f"{name}.py")
        config.model.dtype = "float32"  # CPU: f32 on both sides
        config.model.remat_policy = "none"
        if args.cost_only:
            print(f"{name}, batch {args.batch} x {args.frames} frames, f32: ", end="")
            print(jax_step_cost(config, args.batch, args.frames))
            continue
        jx, n_jax = jax_step_seconds(config, args.batch, args.frames, args.runs)
        pt, n_torch = torch_step_seconds(config, args.batch, args.frames, args.runs)
        rows.append((name, n_jax, n_torch, jx, pt))
    if args.cost_only:
        return
    print(machine_facts())
    print(f"batch {args.batch} x {args.frames} frames, f32")
    print(
        "| config | params jax / torch | jax step s | jax examples/s | torch step s "
        "| torch examples/s | torch / jax |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, nj, nt, jx, pt in rows:
        print(
            f"| {name} | {nj / 1e6:.1f}M / {nt / 1e6:.1f}M | {jx:.3f} | {args.batch / jx:.1f} "
            f"| {pt:.3f} | {args.batch / pt:.1f} | {pt / jx:.2f} |"
        )


if __name__ == "__main__":
    main()
