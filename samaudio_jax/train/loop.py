"""The training loop: mesh, state (fresh or resumed), compiled step, logging, checkpoints.

Stops cleanly on SIGTERM or an Orbax preemption notice (saves at the next step boundary),
and stops with TrainingDivergedError on a non-finite loss without saving that state: the
last checkpoint on disk is then the last good one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import threading
import time

import jax
import numpy as np

from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.parallel.mesh import batch_axis_size, make_mesh
from samaudio_jax.train import metrics as metrics_lib
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib

log = logging.getLogger("samaudio_jax.train")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    final_step: int
    losses: dict[int, float]
    preempted: bool
    resumed_from: int | None


class _StopFlag:
    """Set by SIGTERM; checked at step boundaries."""

    def __init__(self):
        self.set = False
        self._previous = None

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.set = True

    def uninstall(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def make_batch_source(config, setup, batch_source=None):
    """The configured data iterator (per process), or the one given."""
    if batch_source is not None:
        return batch_source
    if config.train.synthetic_data:
        from samaudio_jax.train.synthetic import SyntheticBatches

        return SyntheticBatches(
            global_batch=int(config.train.global_batch_size),
            num_samples=int(round(config.data.segment_seconds * config.data.sample_rate)),
            sample_rate=int(config.data.sample_rate),
            tokenize=setup.tokenize if setup.text_graph is not None else None,
            seed=int(config.seed),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
    if not config.data.dir:
        raise ValueError(
            "config.data.dir: empty; point it at make-shards output, or set "
            "--config.train.synthetic_data=true for a synthetic smoke run"
        )
    from samaudio_jax.data import pipeline

    tokenize = setup.tokenize if setup.text_graph is not None else None
    return iter(pipeline.dataset_from_config(config, "train", tokenize=tokenize))


def _check_finite(pending: list, last_good: int | None) -> None:
    """Raises naming the first step whose loss is not finite; empties `pending`."""
    for step, loss in pending:
        value = float(np.asarray(loss.addressable_data(0)))
        if not math.isfinite(value):
            pending.clear()
            where = f"step {last_good}" if last_good is not None else "none saved yet"
            raise TrainingDivergedError(
                f"loss is {value} at step {step}: training stopped. The state after that step "
                f"was not saved; the last good checkpoint is {where}."
            )
    pending.clear()


class _CompiledSteps:
    """The step compiled ahead of time once per batch shape (text lengths may vary)."""

    def __init__(self, setup, state, frozen, rng):
        self.setup, self.frozen, self.rng = setup, frozen, rng
        self.abstract_state = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
        )
        self.cache = {}

    def get(self, batch):
        key = tuple((k, v.shape, str(v.dtype)) for k, v in sorted(batch.items()))
        if key not in self.cache:
            jitted = step_lib.jit_train_step(self.setup, batch)
            self.cache[key] = jitted.lower(
                self.abstract_state, self.frozen, batch, self.rng
            ).compile()
        return self.cache[key]

    def run(self, state, batch):
        return self.get(batch)(state, self.frozen, batch, self.rng)


def _scalar(x) -> float:
    return float(np.asarray(x.addressable_data(0)))


def train(
    config,
    workdir,
    *,
    batch_source=None,
    factories: state_lib.ModuleFactories | None = None,
    devices=None,
    stop_after_steps: int | None = None,
    print_fn=print,
) -> TrainResult:
    """Trains config.train.steps steps in total, resuming from `workdir` if it holds any."""
    mesh = make_mesh(config.mesh, devices)
    batch = int(config.train.global_batch_size)
    if batch % batch_axis_size(mesh):
        raise ValueError(
            f"config.train.global_batch_size: {batch} does not split over the "
            f"{batch_axis_size(mesh)} (data x fsdp) batch shards of mesh {dict(mesh.shape)}"
        )
    if batch % jax.process_count():
        raise ValueError(
            f"config.train.global_batch_size: {batch} does not split over "
            f"{jax.process_count()} processes"
        )
    setup = state_lib.build_setup(config, mesh, factories)
    source = make_batch_source(config, setup, batch_source)
    ckpt = TrainCheckpointer(f"{workdir}/checkpoints", config)
    is_main = jax.process_index() == 0
    writer = metrics_lib.MetricsWriter(workdir, enabled=is_main)
    stop = _StopFlag()
    stop.install()
    resumed_from = ckpt.latest_step()
    try:
        if resumed_from is not None:
            state, source = ckpt.restore(resumed_from, setup.abstract_state, source)
            print_fn(f"resumed from {ckpt.directory}/{resumed_from}")
        else:
            state = state_lib.init_state(setup)
        frozen = state_lib.init_frozen(setup)
        step = int(_scalar(state["step"]))
        total = int(config.train.steps)
        if stop_after_steps is not None:
            total = min(total, step + stop_after_steps)

        local = next(source)
        first = step_lib.global_batch(setup, local)
        rng = jax.device_put(
            np.asarray(jax.random.PRNGKey(int(config.seed))),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
        )
        train_step = _CompiledSteps(setup, state, frozen, rng)
        flops = metrics_lib.compiled_flops(train_step.get(first))
        peak = metrics_lib.peak_flops_per_device(
            jax.devices()[0].device_kind, float(config.train.peak_flops)
        )
        losses: dict[int, float] = {}
        pending: list = []
        last_good = resumed_from
        log_every = max(1, int(config.train.log_every))
        t_last, steps_since = time.perf_counter(), 0
        preempted = False
        batch_arrays = first
        while step < total:
            if batch_arrays is None:
                batch_arrays = step_lib.global_batch(setup, next(source))
            state, m = train_step.run(state, batch_arrays)
            batch_arrays = None
            step += 1
            steps_since += 1
            _check_finite(pending, last_good)  # the previous step's loss: keeps dispatch async
            pending.append((step, m["loss"]))
            if step % log_every == 0 or step == total:
                _check_finite(pending, last_good)
                now = time.perf_counter()
                sps = steps_since / max(now - t_last, 1e-9)
                t_last, steps_since = now, 0
                values = {k: _scalar(v) for k, v in m.items()}
                values.update(
                    steps_per_s=sps,
                    examples_per_s=sps * batch,
                    mfu=metrics_lib.mfu(flops, sps, peak),
                )
                losses[step] = values["loss"]
                writer.write(step, values)
                if is_main:
                    print_fn(metrics_lib.progress_line(step, total, values), flush=True)
            preempt = stop.set or ckpt.reached_preemption(step)
            if preempt or step % int(config.train.checkpoint_every) == 0 or step == total:
                _check_finite(pending, last_good)
                ckpt.save(step, state, source, force=True)
                writer.flush()
                last_good = step
            if preempt:
                ckpt.wait_until_finished()
                print_fn(
                    f"preempted: saved checkpoint at step {step}; resume with the same command"
                )
                preempted = True
                break
        return TrainResult(step, losses, preempted, resumed_from)
    finally:
        stop.uninstall()
        ckpt.close()
        writer.close()
