"""Pieces every benchmark shares: timing (warm-up, then the median of N runs), the line of
machine facts a table starts with, and the real jitted train step on latent batches.

Imported as `bench.common` (run the scripts with PYTHONPATH=<repo root>).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time

import jax
import numpy as np


def time_runs(fn, runs: int, warmup: int = 1):
    """(median seconds, last result) of `runs` timed calls of `fn` after `warmup` untimed
    ones (which absorb compilation and first-call costs)."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def median_seconds(fn, runs: int, warmup: int = 1) -> float:
    """Median wall seconds of `runs` calls of `fn` after `warmup` untimed calls."""
    return time_runs(fn, runs, warmup)[0]


def machine_facts() -> str:
    """One line: jax version and device, CPU cores, and torch's version and threads when the
    benchmark uses torch."""
    device = jax.devices()[0]
    line = (
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}, "
        f"{jax.device_count()} device(s)), {os.cpu_count()} CPU cores"
    )
    torch = sys.modules.get("torch")
    if torch is not None:
        line += f", torch {torch.__version__} ({torch.get_num_threads()} thread(s))"
    return line


def latent_batch(m, b: int, t: int, seed: int = 0) -> dict:
    """A latent batch (B, T) for model config `m`: random latents, the first example padded
    over its last quarter, one positive span anchor (0.1 s - 0.5 s) per example."""
    rng = np.random.default_rng(seed)

    def latents():
        return rng.normal(size=(b, t, m.latent_dim)).astype(np.float32)

    valid = np.ones((b, t), bool)
    valid[0, t * 3 // 4 :] = False
    spans = np.zeros((b, 2, 3), np.float32)
    spans[:, 0] = (1, 0.1, 0.5)
    return {
        "mixture_latent": latents(),
        "target_latent": latents(),
        "residual_latent": latents(),
        "valid": valid,
        "spans": spans,
    }


@dataclasses.dataclass
class TrainStepBench:
    """The real jitted train step of a config on one device, fed a fixed latent batch (no
    codec weights, no text encoder: memory = S(t)). `run()` takes one step and waits."""

    setup: object
    batch: dict
    frozen: dict
    state: dict
    step_fn: object
    rng: jax.Array

    @classmethod
    def build(cls, config, batch_size: int, frames: int) -> TrainStepBench:
        from samaudio_jax.parallel.mesh import make_mesh
        from samaudio_jax.train import state as state_lib
        from samaudio_jax.train import step as step_lib
        from samaudio_jax.train.inputs import no_codec

        config.train.global_batch_size = batch_size
        config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
        mesh = make_mesh(config.mesh, jax.devices()[:1])
        factories = dataclasses.replace(state_lib.ModuleFactories(), codec=no_codec, text=None)
        setup = state_lib.build_setup(config, mesh, factories)
        state, frozen = state_lib.init_state(setup), state_lib.init_frozen(setup)
        batch = step_lib.global_batch(setup, latent_batch(config.model, batch_size, frames))
        step_fn = step_lib.jit_train_step(setup, batch)
        return cls(setup, batch, frozen, state, step_fn, jax.random.PRNGKey(0))

    def run(self) -> None:
        self.state, metrics = self.step_fn(self.state, self.frozen, self.batch, self.rng)
        metrics["loss"].block_until_ready()

    def param_count(self) -> int:
        from samaudio_jax.train import state as state_lib

        return state_lib.param_count(self.setup.abstract_state["params"])
