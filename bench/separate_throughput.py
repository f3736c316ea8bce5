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
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from bench.common import machine_facts, time_runs  # noqa: E402
from bench.separate import FRAMES, TEXT_TOKENS, network_config  # noqa: E402
from bench.torch_dit import TorchSAMAudioFlow, sample_midpoint  # noqa: E402
from samaudio_jax.model import SAMAudioFlow  # noqa: E402
from samaudio_jax.model.factory import flow_state_dict  # noqa: E402
from samaudio_jax.sample import solvers  # noqa: E402


def jax_sampler(model, steps: int):
    graphdef, state = nnx.split(model)
    grid = jnp.asarray(solvers.uniform_grid(steps))

    @jax.jit
    def sample(state, noise, features, text, text_mask, valid):
        net = nnx.merge(graphdef, state)

        def field(t, x, args):
            time_ = jnp.full((x.shape[0],), t, jnp.float32)
            return net(x, features, text, text_mask, time_, audio_pad_mask=valid)

        return solvers.integrate_fixed("midpoint", field, noise, grid)

    return lambda *args: sample(state, *args)


def inputs(m, batch: int):
    rng = np.random.default_rng(0)
    c = m.out_channels
    noise = rng.normal(size=(batch, FRAMES, c)).astype(np.float32)
    mixture = rng.normal(size=(batch, FRAMES, c // 2)).astype(np.float32)
    features = np.concatenate([mixture, mixture], axis=-1)
    text = rng.normal(size=(batch, TEXT_TOKENS, m.text_dim)).astype(np.float32)
    text_mask = np.broadcast_to(np.arange(TEXT_TOKENS)[None] < 11, (batch, TEXT_TOKENS)).copy()
    valid = np.ones((batch, FRAMES), bool)
    return noise, features, text, text_mask, valid


def bench_row(name: str, batch: int, steps: int, repeats: int) -> dict:
    load0 = os.getloadavg()[0]
    m = network_config(name)
    model = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    noise, features, text, text_mask, valid = inputs(m, batch)
    sampler = jax_sampler(model, steps)
    args = [jnp.asarray(a) for a in (noise, features, text, text_mask, valid)]
    start = time.perf_counter()
    jax.block_until_ready(sampler(*args))
    compile_s = time.perf_counter() - start
    jax_s, ours = time_runs(lambda: jax.block_until_ready(sampler(*args)), repeats, warmup=0)

    net = TorchSAMAudioFlow.from_config(m).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in flow_state_dict(model, m).items()}
    net.load_state_dict(state, strict=True)
    del model, state
    cond = dict(
        text=torch.from_numpy(text),
        text_mask=torch.from_numpy(text_mask),
        audio_mask=torch.from_numpy(valid),
    )

    def run_torch(k):
        with torch.no_grad():
            return sample_midpoint(
                net, torch.from_numpy(noise), torch.from_numpy(features), steps=k, **cond
            )

    threads = {}
    for count in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(count)
        run_torch(1)
        threads[count], _ = time_runs(lambda: run_torch(1), 1, warmup=0)
    best = min(threads, key=threads.get)
    torch.set_num_threads(best)
    torch_s, ref = time_runs(lambda: run_torch(steps), repeats, warmup=0)
    error = float(np.abs(np.asarray(ours) - ref.numpy()).max() / np.abs(ref.numpy()).max())
    return dict(
        name=name, batch=batch, steps=steps, repeats=repeats, jax_s=jax_s, torch_s=torch_s,
        compile_s=compile_s, threads=best, error=error, load=(load0, os.getloadavg()[0]),
    )  # fmt: skip


def bench_tiny_separate(batch: int, steps: int, repeats: int) -> tuple[float, float]:
    from configs.tiny import get_config
    from samaudio_jax.sample import loading
    from samaudio_jax.sample.separate import separate

    config = get_config()
    sep = loading.build_separator(config)
    rng = np.random.default_rng(0)
    audios = [
        (rng.normal(size=FRAMES * config.codec.hop_length) * 0.3).astype(np.float32)
        for _ in range(batch)
    ]

    def call():
        return separate(
            sep.model, sep.codec, sep.text_encoder, audios, ["a dog barking"] * batch,
            key=jax.random.key(0), steps=steps, max_batch=batch, cache_dir=None,
        )  # fmt: skip

    start = time.perf_counter()
    call()
    compile_s = time.perf_counter() - start
    median, _ = time_runs(call, repeats, warmup=0)
    return median, compile_s


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
            median, compile_s = bench_tiny_separate(batch, args.steps, args.repeats)
            print(
                f"tiny separate() end to end, batch {batch}, {args.steps} midpoint steps: "
                f"{batch / median:.2f} separations/s ({median:.3f} s a call, first call "
                f"{compile_s:.1f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
