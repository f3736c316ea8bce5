"""Benchmark: sampling one separation of 10 s of audio (250 latent frames, 16 midpoint
steps = 32 network evaluations) with our jitted JAX sampler against a PyTorch eager copy of
the same network (bench/torch_dit.py, same weights) driven by torchdiffeq's midpoint rule,
on this machine's CPU. Prints a table of medians and the speed-up (target: >= 2x).

Rows:
- tiny: configs/tiny.py's network (D=64, 2 layers, 2L=32), T=250, 16 text tokens.
- small: the release's small network (D=1536, 12 layers, 12 heads, 2L=256), T=250, random
  weights, float32, layers unscanned (the torch side has no scan).
- tiny separate(): our end-to-end separate() (frames codec, small text encoder, 250 frames
  of audio at 8 kHz) for reference; no torch counterpart.
Compilation is excluded from the JAX medians and printed apart; torch gets a warm-up and the
faster of 1 thread and all cores (printed). The "max rel diff" column compares the two
samplers' outputs (same weights, same noise).

A second table says how far compilation can go: the network's FLOPs per evaluation (XLA's
cost analysis), the rate each side reaches over the whole run, and the rate of plain float32
GEMMs of the network's own shapes ((T, D) x (D, ffn hidden) and back) in JAX and in torch,
measured in the same run. A sampler can at best run every FLOP at the faster GEMM rate, so
"best possible" = torch s / (32 x FLOPs / that rate) bounds the speed-up any JAX sampler
of the same network, in the same precision, can reach on this machine.

Run:  python bench/separate.py [--configs tiny,small] [--repeats 3] [--small_repeats 1]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
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
from samaudio_jax.model import SAMAudioFlow  # noqa: E402
from samaudio_jax.model import layers as L  # noqa: E402

STEPS = 16


def network_config(name: str):
    if name == "tiny":
        from configs.tiny import get_config
    else:
        from configs.small import get_config
    m = get_config().model
    m.dtype = m.param_dtype = "float32"
    m.scan_layers = False
    m.remat_policy = "none"
    m.dropout = 0.0
    return m


def bench_network(name: str, repeats: int):
    m = network_config(name)
    model = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    inputs = random_inputs(m, 1)
    flops = forward_flops(model, *inputs)
    compile_s, jax_s, ours = time_jax(jax_midpoint_sampler(model, STEPS), inputs, repeats)

    run_torch, best_threads = torch_midpoint_runner(model, m, inputs, probe_repeats=2)
    del model
    torch_s, ref = time_runs(lambda: run_torch(STEPS), repeats, warmup=0)
    error = max_relative_difference(ours, ref)
    gemm = gemm_rates(m.dim, L.ffn_hidden_dim(m.dim, m.ffn_exp, m.multiple_of))
    return dict(
        name=name, jax=jax_s, torch=torch_s, compile=compile_s, error=error, threads=best_threads,
        flops=flops, gemm=gemm,
    )  # fmt: skip


def forward_flops(model, noise, features, text, text_mask, valid) -> float:
    """FLOPs of one network evaluation, from XLA's cost analysis of the compiled forward."""
    graphdef, state = nnx.split(model)

    def forward(state, x):
        net = nnx.merge(graphdef, state)
        t = jnp.full((x.shape[0],), 0.5, jnp.float32)
        return net(x, features, text, text_mask, t, audio_pad_mask=valid)

    cost = jax.jit(forward).lower(state, jnp.asarray(noise)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def gemm_rates(dim: int, hidden: int, repeats: int = 7) -> tuple[float, float]:
    """FLOP/s of float32 GEMM chains (T, D) @ (D, hidden) @ (hidden, D) in JAX and in torch
    (at torch's current thread count): what either side reaches on the network's matmuls."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(FRAMES, dim)).astype(np.float32)
    w1 = (rng.normal(size=(dim, hidden)) / np.sqrt(dim)).astype(np.float32)
    w2 = (rng.normal(size=(hidden, dim)) / np.sqrt(hidden)).astype(np.float32)
    flops = 4 * 2 * 2 * FRAMES * dim * hidden

    @jax.jit
    def chain(x, w1, w2):
        for _ in range(4):
            x = (x @ w1) @ w2
        return x

    args = [jnp.asarray(a) for a in (x, w1, w2)]
    jax_s, _ = time_runs(lambda: chain(*args).block_until_ready(), repeats, warmup=2)
    tx, t1, t2 = (torch.from_numpy(a) for a in (x, w1, w2))

    def torch_chain():
        y = tx
        for _ in range(4):
            y = (y @ t1) @ t2
        return y

    with torch.no_grad():
        torch_s, _ = time_runs(torch_chain, repeats, warmup=2)
    return flops / jax_s, flops / torch_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small_repeats", type=int, default=2)
    args = parser.parse_args()
    print(machine_facts())
    print(f"torch threads: the faster of 1 and {os.cpu_count()}; "
          f"T={FRAMES}, midpoint x {STEPS} steps, batch 1")  # fmt: skip
    print(f"{'network':<8} {'runs':>4} {'jax s':>9} {'torch s':>9} {'threads':>7} "
          f"{'speed-up':>9} {'compile s':>10} {'max rel diff':>13}", flush=True)  # fmt: skip
    results = []
    for name in args.configs.split(","):
        repeats = args.small_repeats if name == "small" else args.repeats
        r = bench_network(name, repeats)
        results.append(r)
        print(f"{r['name']:<8} {repeats:>4} {r['jax']:>9.3f} {r['torch']:>9.3f} "
              f"{r['threads']:>7} {r['torch'] / r['jax']:>8.2f}x {r['compile']:>10.1f} "
              f"{r['error']:>13.2e}", flush=True)  # fmt: skip
    print(f"\n{'network':<8} {'GFLOP/eval':>10} {'jax GFLOP/s':>11} {'torch GFLOP/s':>13} "
          f"{'GEMM jax':>9} {'GEMM torch':>10} {'best possible':>13}")  # fmt: skip
    evals = 2 * STEPS
    for r in results:
        total = evals * r["flops"]
        floor_s = total / max(r["gemm"])
        print(f"{r['name']:<8} {r['flops'] / 1e9:>10.2f} {total / r['jax'] / 1e9:>11.1f} "
              f"{total / r['torch'] / 1e9:>13.1f} {r['gemm'][0] / 1e9:>9.1f} "
              f"{r['gemm'][1] / 1e9:>10.1f} {r['torch'] / floor_s:>12.2f}x", flush=True)  # fmt: skip
    if "tiny" in args.configs.split(","):
        median, compile_s = tiny_separate_timing(1, STEPS, args.repeats)
        print(f"tiny separate() end to end (codec + text + ODE, 250 frames): {median:.3f} s "
              f"median of {args.repeats}, first call {compile_s:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
