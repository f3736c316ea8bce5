"""GPU benchmark: train-step time and MFU of base/large, and the DiT time of one 10 s separation.

For a machine with an accelerator (bench/gpu.sh runs it). Per config: the real jitted train
step (bf16 compute, f32 master weights, scan + remat as in configs/*.py) on latent batches of
B x 250 frames, median of --runs after compilation; MFU = compiled FLOPs / step time / the
device's peak; then 16 midpoint steps (32 network evaluations) over 250 frames for batch 1,
the release's sampling of 10 s of audio.

    PYTHONPATH=. python bench/gpu_step.py [--configs base large] [--batch 8] [--runs 5]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import TrainStepBench, machine_facts, median_seconds  # noqa: E402
from samaudio_jax.cli.config_loader import load_config  # noqa: E402
from samaudio_jax.model import SAMAudioFlow  # noqa: E402
from samaudio_jax.sample.solvers import integrate_fixed, uniform_grid  # noqa: E402
from samaudio_jax.train import metrics as metrics_lib  # noqa: E402
from samaudio_jax.train import step as step_lib  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMES = 250


def train_step(config, batch_size: int, runs: int):
    bench = TrainStepBench.build(config, batch_size, FRAMES)
    flops = metrics_lib.compiled_flops(step_lib.compile_train_step(bench.setup, bench.batch))
    seconds = median_seconds(bench.run, runs)
    peak = metrics_lib.peak_flops_per_device(jax.devices()[0].device_kind, config.train.peak_flops)
    return seconds, flops, metrics_lib.mfu(flops, 1.0 / seconds, peak)


def separation_dit_seconds(config, runs: int) -> float:
    m = config.model
    with nnx.use_eager_sharding(False):
        model = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    graph, params = nnx.split(model)
    width = 2 * m.latent_dim
    mix = jnp.zeros((1, FRAMES, width), jnp.float32)
    text = jnp.zeros((1, 8, m.text_dim), jnp.float32)
    mask = jnp.ones((1, 8), bool)

    @jax.jit
    def sample(params, noise):
        net = nnx.merge(graph, params)

        def field(t, x, args):
            return net(x, mix, text, mask, jnp.full((1,), t))

        return integrate_fixed("midpoint", field, noise, jnp.asarray(uniform_grid(16)))

    noise = jax.random.normal(jax.random.PRNGKey(1), (1, FRAMES, width))
    return median_seconds(lambda: sample(params, noise).block_until_ready(), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["base", "large"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{machine_facts()}; {FRAMES} frames")
    print(
        f"{'config':<7} {'batch':>5} {'step s':>8} {'ex/s':>7} {'TFLOP/step':>11} {'MFU':>6} {'10 s DiT s':>11}"
    )
    for name in args.configs:
        config = load_config(REPO / "configs" / f"{name}.py")
        seconds, flops, mfu = train_step(config, args.batch, args.runs)
        dit = separation_dit_seconds(load_config(REPO / "configs" / f"{name}.py"), args.runs)
        mfu_text = f"{100 * mfu:5.1f}%" if mfu else "   n/a"
        tflop = f"{flops / 1e12:11.2f}" if flops else "        n/a"
        print(
            f"{name:<7} {args.batch:>5} {seconds:>8.3f} {args.batch / seconds:>7.1f} {tflop} {mfu_text} {dit:>11.2f}"
        )


if __name__ == "__main__":
    main()
