"""The training loop: mesh, state (fresh or resumed), compiled step, logging, checkpoints.

One writer per workdir: process 0 holds WORKDIR/train.lock for the run (checkpoint/lock.py);
every process stops when it cannot take it.

Preemption, agreed by all processes: a SIGTERM (the preemption notice of TPU VMs and most
schedulers) to any process makes every process save the same step and return. How:
- multi-process with JAX's preemption service (on by default after jax.distributed.initialize):
  the service owns SIGTERM (its C++ handler), tells every process through the coordination
  service, and `reached_preemption_sync_point(step)` turns True at the same step everywhere.
  It is called at every step boundary but costs nothing until a notice arrives (a local
  counter under a lock); the agreement (a barrier over the coordination service) runs once,
  in the background, after the notice. We install no Python SIGTERM handler then: it would
  replace the service's and the other processes would never hear of the notice.
- multi-process without the service (jax_enable_preemption_service=False): a Python handler
  sets a local flag and the flags are all-gathered (one tiny collective) every
  PREEMPTION_POLL_STEPS steps; all processes see the same gathered flags, so they stop at
  the same step.
- one process: the Python handler's flag, read at the next step boundary.

Never save poison: the loss, the gradient norm and the updated parameters' norm (metrics the
step returns) must be finite before any save; otherwise TrainingDivergedError names the
step, the state after it is not saved, and the last checkpoint on disk stays the newest.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import jax
import numpy as np

from samaudio_jax.checkpoint.lock import WorkdirLock, WorkdirLockedError
from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.config_checks import validate_config
from samaudio_jax.parallel.mesh import batch_axis_size, make_mesh
from samaudio_jax.train import distill, validation
from samaudio_jax.train import init_from as init_from_lib
from samaudio_jax.train import metrics as metrics_lib
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib
from samaudio_jax.train.latent_scale import resolve_latent_scale
from samaudio_jax.train.preemption import Preemption

log = logging.getLogger("samaudio_jax.train")


_FINITE_METRICS = ("loss", "grad_norm", "param_norm")


class TrainingDivergedError(RuntimeError):
    """The loss, the gradients or the updated parameters became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    final_step: int
    losses: dict[int, float]
    preempted: bool
    resumed_from: int | None


def _lock_workdir(workdir, force: bool, print_fn) -> WorkdirLock:
    """Process 0 takes the workdir lock; every process raises when it could not."""
    lock = WorkdirLock(workdir, force=force, warn=lambda m: print_fn(m, flush=True))
    error = None
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except WorkdirLockedError as e:
            error = str(e)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        ok = multihost_utils.broadcast_one_to_all(np.asarray(error is None, np.int32))
        if not int(ok):
            lock.release()
            raise WorkdirLockedError(error or f"process 0 could not lock the workdir {workdir}")
    elif error is not None:
        raise WorkdirLockedError(error)
    return lock


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
            tokenize=setup.tokenizer if setup.text_graph is not None else None,
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

    # Not the bound setup.tokenize: Grain pickles this for its workers, and the setup holds
    # the mesh (devices cannot be pickled).
    tokenize = setup.tokenizer if setup.text_graph is not None else None
    return iter(pipeline.dataset_from_config(config, "train", tokenize=tokenize))


def _check_finite(pending: list, last_good: int | None) -> None:
    """Raises naming the first step whose loss, gradient norm or updated-parameter norm is
    not finite; empties `pending` (a list of (step, metrics))."""
    for step, m in pending:
        keys = [k for k in _FINITE_METRICS if k in m]
        # One device_get for the step's three scalars: one wait, not three, per step.
        fetched = jax.device_get([m[k].addressable_data(0) for k in keys])
        values = {k: float(np.asarray(v)) for k, v in zip(keys, fetched)}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            pending.clear()
            where = f"step {last_good}" if last_good is not None else "none saved yet"
            what = ", ".join(f"{k} is {values[k]}" for k in bad)
            finite = [k for k in values if k not in bad]
            also = (
                f" ({', '.join(f'{k} {values[k]:.4g}' for k in finite)} finite)" if finite else ""
            )
            raise TrainingDivergedError(
                f"step {step}: {what}{also}: training stopped. The state after that step "
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
    force_unlock: bool = False,
    allow_config_change: tuple[str, ...] = (),
    init_from=None,
) -> TrainResult:
    """Trains config.train.steps steps in total, resuming from `workdir` if it holds any.

    force_unlock: take the workdir lock even when another host's trainer holds it.
    allow_config_change: config fields / sections that may differ from the checkpoint's.
    init_from: a fresh workdir starts from these weights (train/init_from.py)."""
    validate_config(config)  # before the workdir is locked or anything is read
    lock = _lock_workdir(workdir, force_unlock, print_fn)
    try:
        return _train_locked(
            config,
            workdir,
            batch_source=batch_source,
            factories=factories,
            devices=devices,
            stop_after_steps=stop_after_steps,
            print_fn=print_fn,
            allow_config_change=allow_config_change,
            init_from=init_from,
        )
    finally:
        lock.release()


def _prepare_run(config, workdir, batch_source, factories, devices, print_fn, init_from):
    """(config, mesh, setup, batch source, evaluator): everything the loop needs, checked
    before any checkpoint directory is made."""
    mesh = make_mesh(config.mesh, devices)
    distilling = distill.enabled(config)
    if distilling:  # the student samples euler x student_steps and starts as the teacher
        config = distill.student_config(config)
        init_from = init_from or str(config.train.distill.teacher)
    config = init_from_lib.prepare(config, workdir, init_from, mesh=mesh)
    # codec.latent_scale='auto': measured on the training split, kept beside the checkpoints
    # (after `prepare`: a run started from weights uses its source's scale, in frozen/).
    config = resolve_latent_scale(config, workdir, print_fn)
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
    table = None
    if batch_source is None:  # the dataset's index picks waveform or latent batches
        from samaudio_jax.train import inputs as inputs_lib

        factories, table, kind = inputs_lib.for_dataset(
            config, factories or state_lib.ModuleFactories()
        )
        if kind == "latents" and jax.process_index() == 0:
            print_fn(
                "latent dataset: the step runs without the codec"
                + (" or T5 (text features from the table)" if table is not None else ""),
                flush=True,
            )
    setup = state_lib.build_setup(config, mesh, factories)
    if distilling:
        setup = distill.with_teacher(setup)
    if table is not None:
        setup = inputs_lib.with_text_table(setup, table)
    source = make_batch_source(config, setup, batch_source)
    # Evaluation during training (train.eval_every): the validation set is read once, and a
    # bad eval setting is refused before any checkpoint directory is made.
    evaluator = validation.Validator(config, setup) if config.train.eval_every else None
    return config, mesh, setup, source, evaluator


class _Progress:
    """Every log_every steps: the step's metrics with throughput (over training time only)
    and MFU, to metrics.jsonl / TensorBoard and, on process 0, as a progress line."""

    def __init__(self, config, writer, print_fn, is_main: bool, total: int, compiled):
        self.writer, self.print_fn, self.is_main, self.total = writer, print_fn, is_main, total
        self.batch = int(config.train.global_batch_size)
        self.peak = metrics_lib.peak_flops_per_device(
            jax.devices()[0].device_kind, float(config.train.peak_flops)
        )
        # counting re-costs each loop body (hlo_cost): only where an MFU can be shown
        self.flops = metrics_lib.compiled_flops(compiled) if self.peak else None
        self.losses: dict[int, float] = {}
        self.t_last, self.steps = time.perf_counter(), 0

    def log(self, step: int, m: dict) -> None:
        now = time.perf_counter()
        sps = self.steps / max(now - self.t_last, 1e-9)
        self.t_last, self.steps = now, 0
        values = {k: _scalar(v) for k, v in m.items()}
        values.update(
            steps_per_s=sps,
            examples_per_s=sps * self.batch,
            mfu=metrics_lib.mfu(self.flops, sps, self.peak),
        )
        self.losses[step] = values["loss"]
        self.writer.write(step, values)
        if self.is_main:
            self.print_fn(metrics_lib.progress_line(step, self.total, values), flush=True)

    def evaluate(self, evaluator, step: int, state, frozen) -> None:
        values = evaluator.run(step, state, frozen)
        self.t_last += values["eval/seconds"]  # throughput counts training time only
        self.writer.write(step, values)
        if self.is_main:
            self.print_fn(validation.progress_line(step, values), flush=True)


def _save(ckpt, evaluator, writer, workdir, step: int, state, source) -> None:
    """Checkpoint `step` (with the eval metrics keep_best_by ranks it by)."""
    if evaluator is not None:
        evaluator.publish_best(ckpt, workdir)  # the previous save, now complete
    best_metrics = evaluator.checkpoint_metrics(step) if evaluator else None
    ckpt.save(step, state, source, force=True, metrics=best_metrics)
    writer.flush()


def _train_locked(
    config,
    workdir,
    *,
    batch_source,
    factories,
    devices,
    stop_after_steps,
    print_fn,
    allow_config_change,
    init_from=None,
) -> TrainResult:
    config, mesh, setup, source, evaluator = _prepare_run(
        config, workdir, batch_source, factories, devices, print_fn, init_from
    )
    ckpt = TrainCheckpointer(
        f"{workdir}/checkpoints", config, allow_changes=tuple(allow_config_change)
    )
    is_main = jax.process_index() == 0
    writer = metrics_lib.MetricsWriter(workdir, enabled=is_main)
    stop = Preemption()
    resumed_from = ckpt.latest_step()
    try:
        if resumed_from is not None:
            state, source = ckpt.restore(resumed_from, setup.abstract_state, source)
            print_fn(f"resumed from {ckpt.directory}/{resumed_from}")
        else:
            state = state_lib.init_state(setup)
        frozen = state_lib.init_frozen(setup)
        if distill.enabled(config):  # the teacher sits in the frozen inputs
            frozen = distill.load_teacher(setup, frozen, print_fn)
        step = int(_scalar(state["step"]))
        stop.start(step)
        total = int(config.train.steps)
        if stop_after_steps is not None:
            total = min(total, step + stop_after_steps)

        batch_arrays = step_lib.global_batch(setup, next(source))
        rng = jax.device_put(
            np.asarray(jax.random.PRNGKey(int(config.seed))),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
        )
        train_step = _CompiledSteps(setup, state, frozen, rng)
        compiled = train_step.get(batch_arrays)  # compiles before the clock starts
        progress = _Progress(config, writer, print_fn, is_main, total, compiled)
        pending, last_good, preempted = [], resumed_from, False
        log_every = max(1, int(config.train.log_every))
        while step < total:
            if batch_arrays is None:
                batch_arrays = step_lib.global_batch(setup, next(source))
            state, m = train_step.run(state, batch_arrays)
            batch_arrays = None
            step += 1
            progress.steps += 1
            _check_finite(pending, last_good)  # the previous step's: keeps dispatch async
            pending.append((step, m))
            if step % log_every == 0 or step == total:
                _check_finite(pending, last_good)
                progress.log(step, m)
            if evaluator is not None and evaluator.due(step):
                _check_finite(pending, last_good)
                progress.evaluate(evaluator, step, state, frozen)
            preempt = stop.reached(step)
            if preempt or step % int(config.train.checkpoint_every) == 0 or step == total:
                _check_finite(pending, last_good)
                _save(ckpt, evaluator, writer, workdir, step, state, source)
                last_good = step
            if preempt:
                ckpt.wait_until_finished()
                print_fn(f"preempted: saved step {step}; resume with the same command", flush=True)
                preempted = True
                break
        if evaluator is not None:
            evaluator.publish_best(ckpt, workdir)
        return TrainResult(step, progress.losses, preempted, resumed_from)
    finally:
        stop.close()
        ckpt.close()
        writer.close()
