"""Train-step examples/s with latent batches (encode-shards output: no codec in the step)
against waveform batches of the same mixtures (the codec encodes mixture, target and
residual inside the step), one CPU device.

Both steps are the real jitted train step of the config (flow loss, backward, AdamW), no
text prompt on either side; the latent batch is the codec's encoding of the waveform batch,
so the two steps see the same data. Median of --runs steps after a compiling warm-up.

    PYTHONPATH=. python bench/latent_step.py [--configs tiny small] [--batch 2] [--seconds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, median_seconds  # noqa: E402
from samaudio_jax.cli.config_loader import load_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def step_seconds(config, factories, batch, runs):
    import jax

    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib
    from samaudio_jax.train import step as step_lib

    mesh = make_mesh(config.mesh, jax.devices()[:1])
    setup = state_lib.build_setup(config, mesh, factories)
    state, frozen = state_lib.init_state(setup), state_lib.init_frozen(setup)
    arrays = step_lib.global_batch(setup, batch)
    fn = step_lib.jit_train_step(setup, arrays)
    rng = jax.random.PRNGKey(0)
    holder = {"state": state}

    def run():
        holder["state"], m = fn(holder["state"], frozen, arrays, rng)
        m["loss"].block_until_ready()

    return median_seconds(run, runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0, help="segment length (s)")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()

    from samaudio_jax.codec import build_codec
    from samaudio_jax.codec.base import jit_method
    from samaudio_jax.train import state as state_lib
    from samaudio_jax.train.inputs import no_codec

    rows = []
    for name in args.configs:
        config = load_config(REPO / "configs" / f"{name}.py", ["--config.text.kind=small"])
        config.model.dtype = "float32"  # CPU: f32
        config.model.remat_policy = "none"
        config.train.global_batch_size = args.batch
        config.data.segment_seconds = args.seconds
        config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
        rate = int(config.codec.sample_rate)
        n = int(args.seconds * rate)
        rng = np.random.default_rng(0)
        target = 0.1 * rng.standard_normal((args.batch, n)).astype(np.float32)
        residual = 0.1 * rng.standard_normal((args.batch, n)).astype(np.float32)
        wave = {"mixture": target + residual, "target": target, "residual": residual}
        encode = jit_method(build_codec(config.codec), "encode")
        lat = {f"{k}_latent": np.asarray(encode(v)) for k, v in wave.items()}
        spans = np.zeros((args.batch, 4, 3), np.float32)
        spans[:, 0] = (1, 0.1, 0.5)
        base = dataclasses.replace(state_lib.ModuleFactories(), text=None)
        latent = dataclasses.replace(base, codec=no_codec)
        load0 = os.getloadavg()[0]
        w = step_seconds(config, base, {**wave, "spans": spans}, args.runs)
        lt = step_seconds(config, latent, {**lat, "spans": spans}, args.runs)
        rows.append((name, config.codec.kind, w, lt, load0, os.getloadavg()[0]))
    print(machine_facts())
    print(f"batch {args.batch} x {args.seconds:g} s segments, f32, no text prompt")
    print("| config (codec) | waveform step s | ex/s | latent step s | ex/s | speed-up | load |")
    print("|---|---|---|---|---|---|---|")
    for name, kind, w, lt, l0, l1 in rows:
        print(
            f"| {name} ({kind}) | {w:.3f} | {args.batch / w:.2f} | {lt:.3f} | "
            f"{args.batch / lt:.2f} | {w / lt:.1f}x | {l0:.1f} -> {l1:.1f} |"
        )


if __name__ == "__main__":
    main()
