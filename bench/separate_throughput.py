"""Benchmark: sampling throughput (separations per second) at batch 1 and 8 for the tiny and
small networks, our jitted JAX sampler against PyTorch eager + torchdiffeq (the release's way
of sampling) at the same batch, on this machine's CPU.

One separation = 10 s of audio (250 latent frames), midpoint steps from noise to t = 1 with
the same weights on both sides (bench/torch_dit.py); `--steps` sets the midpoint steps
(release: 16 = 32 network evaluations; the small network takes ~48 s a separation at 16
steps here, so its rows default to fewer steps and say so). The network part is what both
sides share (codec and text encoder are outside the comparison, as in bench/separate.py);
`tiny separate()` adds our end-to-end separate() (frames codec, small text encoder) at
batch 1 and 8 for reference. Compilation is excluded and printed apart; torch runs with the
faster of 1 thread and all cores. The 1-minute load average is printed before and after each
row: the machine is shared.

Run:  python bench/separate_throughput.py [--configs tiny,small] [--batches 1,8]
          [--steps 16] [--small_steps 2] [--repeats 3] [--small_repeats 1]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flax import nnx  # noqa: E402

from bench.common import machine_facts, time_runs  # noqa: E402
from bench.sampler_pair import (  # noqa: E402
    FRAMES,
    jax_midpoint_sampler,
    max_relative_difference,
    random_inputs,
    time_jax,
    tiny_separate_timing,
    torch_midpoint_runner,
)
from bench.separate import network_config  # noqa: E402
from samaudio_jax.model import SAMAudioFlow  # noqa: E402


def bench_row(name: str, batch: int, steps: int, repeats: int) -> dict:
    load0 = os.getloadavg()[0]
    m = network_config(name)
    model = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    inputs = random_inputs(m, batch)
    compile_s, jax_s, ours = time_jax(jax_midpoint_sampler(model, steps), inputs, repeats)

    run_torch, best = torch_midpoint_runner(model, m, inputs)
    del model
    torch_s, ref = time_runs(lambda: run_torch(steps), repeats, warmup=0)
    return dict(
        name=name, batch=batch, steps=steps, repeats=repeats, jax_s=jax_s, torch_s=torch_s,
        compile_s=compile_s, threads=best, error=max_relative_difference(ours, ref),
        load=(load0, os.getloadavg()[0]),
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,small")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--small_steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small_repeats", type=int, default=1)
    args = parser.parse_args()
    print(machine_facts())
    print(f"T={FRAMES} frames (10 s), midpoint steps as listed (NFE = 2 x steps)")
    header = (
        f"{'network':<8} {'batch':>5} {'steps':>5} {'NFE':>4} {'jax sep/s':>10} "
        f"{'torch sep/s':>11} {'speed-up':>9} {'threads':>7} {'compile s':>9} "
        f"{'max rel diff':>12} {'load 1m':>11}"
    )
    print(header, flush=True)
    for name in args.configs.split(","):
        small = name == "small"
        steps = args.small_steps if small else args.steps
        repeats = args.small_repeats if small else args.repeats
        for batch in (int(b) for b in args.batches.split(",")):
            r = bench_row(name, batch, steps, repeats)
            print(
                f"{name:<8} {batch:>5} {steps:>5} {2 * steps:>4} {batch / r['jax_s']:>10.3f} "
                f"{batch / r['torch_s']:>11.3f} {r['torch_s'] / r['jax_s']:>8.2f}x "
                f"{r['threads']:>7} {r['compile_s']:>9.1f} {r['error']:>12.2e} "
                f"{r['load'][0]:>5.1f}/{r['load'][1]:<5.1f}",
                flush=True,
            )
    if "tiny" in args.configs.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            median, compile_s = tiny_separate_timing(batch, args.steps, args.repeats)
            print(
                f"tiny separate() end to end, batch {batch}, {args.steps} midpoint steps: "
                f"{batch / median:.2f} separations/s ({median:.3f} s a call, first call "
                f"{compile_s:.1f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
