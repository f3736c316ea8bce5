"""Evaluation during training: every config.train.eval_every steps, on a validation set
built once at start-up from the test/ split of train.eval_data_dir (or data.dir).

Two measurements, both on the weights an export or `samaudio-jax eval` would use (the EMA
weights when train.ema_decay > 0, else the trained ones):
- the held-out flow-matching loss per time bucket (`eval/loss_t0`, `eval/loss_t1`, ... for
  the buckets between the edges train.eval_time_buckets; `eval/loss` over all of them):
  train.eval_batches batches made by the data pipeline with seed train.eval_seed (no prompt
  dropout, no conditioning dropout, no model dropout), and per batch and bucket times drawn
  uniformly inside the bucket and noise, both from fixed keys. Values are comparable across
  steps and runs. Every process takes part (the program is the sharded loss on the mesh).
- SI-SDR, SI-SDRi and SDR (median and mean, overall and per category) of
  train.eval_num_mixtures mixtures separated with train.eval_solver and train.eval_ode_steps:
  the `eval` command's own code (eval/evaluate.py: heldout_mixtures, evaluate), with its
  mixture seed (train.eval_seed) and sampling key, on a Separator built as `eval` builds one
  from a workdir. So `samaudio-jax eval --checkpoint WORKDIR --step S --num N --seed SEED
  --solver SOLVER --steps K` prints the numbers logged at step S. Process 0 separates (the
  parameters are gathered to every process, a collective) and sends the values to the others.

Values go to metrics.jsonl (a line {"step": S, "eval/...": ...}) and TensorBoard (scalars
named as in the JSON). With train.keep_best_by (e.g. "eval/si_sdri_median") the checkpoint
saved at an evaluated step carries the eval values, Orbax keeps the best one besides the
keep_checkpoints newest, and WORKDIR/best.json names it once its save is complete.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from samaudio_jax.config_checks import ConfigError
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.parallel.constraints import activation_sharding
from samaudio_jax.paths import as_path
from samaudio_jax.train import step as step_lib

BEST_FILE = "best.json"
SAMPLE_SEED = 0  # the sampling key of eval/evaluate.evaluate (what `eval` uses)
SUMMARY_STATS = ("si_sdri_median", "si_sdri_mean", "si_sdr_median", "si_sdr_mean")
SUMMARY_STATS += ("sdr_median", "sdr_mean")
CATEGORY_STATS = ("si_sdri_median", "si_sdri_mean")


def loss_keys(config) -> list[str]:
    edges = tuple(config.train.eval_time_buckets)
    return ["eval/loss"] + [f"eval/loss_t{i}" for i in range(len(edges) - 1)]


def separation_keys(categories) -> list[str]:
    keys = [f"eval/{s}" for s in SUMMARY_STATS]
    return keys + [f"eval/{s}/{c}" for c in sorted(set(categories)) for s in CATEGORY_STATS]


def separation_values(summary: dict) -> dict[str, float]:
    """eval/evaluate.evaluate's summary as the flat metrics logged (see separation_keys)."""
    out = {f"eval/{s}": float(summary["overall"][s]) for s in SUMMARY_STATS}
    for c, stats in sorted(summary["per_category"].items()):
        out.update({f"eval/{s}/{c}": float(stats[s]) for s in CATEGORY_STATS})
    return out


def validation_data(config):
    """The data section the validation set is read with (its `dir` holds test/)."""
    data = config.data.copy_and_resolve_references()
    if config.train.eval_data_dir:
        data.dir = str(config.train.eval_data_dir)
        data.tfds_name = ""
    if not data.dir:
        raise ConfigError(
            "config.train.eval_every: evaluation needs a test split; set "
            "config.train.eval_data_dir (or config.data.dir) to a directory holding test/"
        )
    return data


def _heldout_batches(config, setup, data) -> list[dict]:
    """train.eval_batches global batches of the test split (the pipeline, fixed seed).

    Every process reads the whole (small) set and places its own rows: the batches, hence
    the values, do not depend on the number of processes or the mesh."""
    import dataclasses

    from samaudio_jax.data import pipeline

    count = int(config.train.eval_batches)
    if count == 0:
        return []
    source = pipeline.open_split(data, "test")
    pipeline.check_video_features(source, config)
    # Every condition kept, no worker processes (a few batches, read once).
    options = dataclasses.replace(pipeline.PipelineConfig.from_config(data), worker_count=0)
    tokenize = setup.tokenizer if setup.text_graph is not None else None
    stream = iter(
        pipeline.make_dataset(
            source,
            options,
            batch_size=int(config.train.global_batch_size),
            seed=int(config.train.eval_seed),
            tokenize=tokenize,
        )
    )
    batches = []
    for _ in range(count):
        full = step_lib.prepare_local_batch(next(stream))
        shardings = step_lib.batch_shardings(setup, full)
        batches.append(
            {
                k: jax.make_array_from_callback(v.shape, shardings[k], lambda i, v=v: v[i])
                for k, v in full.items()
            }
        )
    return batches


def _loss_program(setup):
    """jit (params, frozen, batch, keys, lo, hi) -> (sum of squared errors, count), each
    example at a time uniform in [lo, hi) and noise from its key; nothing dropped."""
    rules = setup.config.mesh.rules

    def program(params, frozen, batch, keys, lo, hi):
        def draw(key, frames, channels):
            k_t, k_noise = jax.random.split(key)
            t = lo + (hi - lo) * jax.random.uniform(k_t, (), jnp.float32)
            noise = jax.random.normal(k_noise, (frames, channels), jnp.float32)
            return t, noise, jnp.zeros((3,), bool)

        loss_fn = step_lib.make_loss_fn(setup, randomness=draw, deterministic=True)
        with activation_sharding(setup.mesh, rules):
            return loss_fn(params, frozen, batch, keys, keys[0])

    return jax.jit(program, out_shardings=NamedSharding(setup.mesh, PartitionSpec()))


def _host(tree):
    """A tree of global arrays as numpy on every process (a collective when multi-process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def _set_params(module: nnx.Module, tree: dict) -> None:
    # As checkpoint/workdir.py sets a workdir's weights for `eval` (same values, same types).
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, tree))
    nnx.update(module, state)


class Validator:
    """Built once per run (reads the validation set); `run(step, state, frozen)` at a step
    boundary returns the eval values when the step is due, else None."""

    def __init__(self, config, setup):
        from samaudio_jax.eval import evaluate as ev
        from samaudio_jax.sample import solvers

        self.config, self.setup = config, setup
        self.every = int(config.train.eval_every)
        self.is_main = jax.process_index() == 0
        train = config.train
        try:
            solvers.check_solver(str(train.eval_solver), "config.train.eval_solver")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        data = validation_data(config)
        num = int(train.eval_num_mixtures)
        # Every process reads the mixtures (cheap, deterministic): it needs their categories
        # to receive process 0's values.
        seed = int(train.eval_seed)
        self.mixtures = ev.heldout_mixtures(data.dir, config.data, num, seed) if num else []
        self.keys_out = (loss_keys(config) if int(train.eval_batches) else []) + (
            separation_keys([m.category for m in self.mixtures]) if self.mixtures else []
        )
        self.best_by = str(train.keep_best_by)
        if self.best_by and self.best_by not in self.keys_out:
            raise ConfigError(
                f"config.train.keep_best_by: {self.best_by!r} is not an eval value of this "
                f"run; choose one of {', '.join(self.keys_out)}"
            )

        edges = [float(e) for e in train.eval_time_buckets]
        self.buckets = list(zip(edges[:-1], edges[1:]))
        self.batches = _heldout_batches(config, setup, data)
        replicated = NamedSharding(setup.mesh, PartitionSpec())
        root = jax.random.PRNGKey(seed)
        self.keys = []  # [batch][bucket] -> (B, 2) example keys, the same at every eval
        for b, batch in enumerate(self.batches):
            size = jax.tree.leaves(batch)[0].shape[0]
            per_bucket = []
            for j in range(len(self.buckets)):
                k = jax.random.split(jax.random.fold_in(jax.random.fold_in(root, b), j), size)
                per_bucket.append(jax.device_put(np.asarray(k), replicated))
            self.keys.append(per_bucket)
        self.loss = _loss_program(setup) if self.batches else None

        self.separator = None
        if self.mixtures and self.is_main:
            from samaudio_jax.sample.loading import build_separator

            sep_config = config.copy_and_resolve_references()
            sep_config.sample.solver = str(train.eval_solver)
            sep_config.sample.steps = int(train.eval_ode_steps)
            self.separator = build_separator(sep_config, seed=int(config.seed))
        self.values: dict[int, dict[str, float]] = {}

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def run(self, step: int, state: dict, frozen: dict) -> dict[str, float] | None:
        if not self.due(step):
            return None
        start = time.perf_counter()
        params = state["ema"] if "ema" in state else state["params"]
        values = self._losses(params, frozen) if self.batches else {}
        if self.mixtures:
            values.update(self._separation(params))
        values["eval/seconds"] = time.perf_counter() - start
        self.values = {step: values}  # only the latest is attached to a checkpoint
        return values

    def _losses(self, params, frozen) -> dict[str, float]:
        # Dispatched together, read once: (sum of squared errors, count) per batch and bucket.
        parts = [
            [self.loss(params, frozen, batch, keys[j], np.float32(lo), np.float32(hi))
             for j, (lo, hi) in enumerate(self.buckets)]
            for batch, keys in zip(self.batches, self.keys)
        ]  # fmt: skip
        totals = np.zeros((len(self.buckets), 2))
        for per_bucket in parts:
            for j, pair in enumerate(per_bucket):
                totals[j] += [float(np.asarray(x.addressable_data(0))) for x in pair]
        out = {"eval/loss": float(totals[:, 0].sum() / max(totals[:, 1].sum(), 1.0))}
        for j, (sse, count) in enumerate(totals):
            out[f"eval/loss_t{j}"] = float(sse / max(count, 1.0))
        return out

    def _separation(self, params) -> dict[str, float]:
        from samaudio_jax.eval import evaluate as ev

        host = _host(params)
        keys = separation_keys([m.category for m in self.mixtures])
        vector = np.zeros(len(keys), np.float64)
        if self.separator is not None:
            _set_params(self.separator.model, host["flow"])
            if "text" in host:
                _set_params(self.separator.text_encoder, host["text"])
            summary = ev.evaluate(self.separator, self.mixtures, seed=SAMPLE_SEED)
            flat = separation_values(summary)
            vector = np.asarray([flat[k] for k in keys], np.float64)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            # As raw 32-bit words: JAX would round float64 to float32 (x64 off), and every
            # process must store the same values with its checkpoint (keep-best).
            words = multihost_utils.broadcast_one_to_all(vector.view(np.uint32))
            vector = np.asarray(words, np.uint32).view(np.float64)
        return {k: float(v) for k, v in zip(keys, vector)}

    def checkpoint_metrics(self, step: int) -> dict[str, float] | None:
        """The eval values to store with checkpoint `step` (keep-best), None when not due."""
        if not self.best_by:
            return None
        return self.values.get(step)

    def publish_best(self, ckpt, workdir) -> None:
        """Writes WORKDIR/best.json naming the best complete checkpoint (process 0); waits
        for the save in flight first, so the file never names a half-written step."""
        if not self.best_by:
            return
        ckpt.wait_until_finished()
        best = ckpt.best_step()
        if best is None or not self.is_main:
            return
        metrics = ckpt.metrics(best) or {}
        record = {
            "metric": self.best_by,
            "mode": str(self.config.train.keep_best_mode),
            "step": int(best),
            "value": metrics.get(self.best_by),
            "checkpoint": f"checkpoints/{best}",
        }
        atomic_write_text(as_path(workdir) / BEST_FILE, json.dumps(record, indent=2))


def progress_line(step: int, values: dict[str, float]) -> str:
    parts = [f"eval step {step}"]
    if "eval/loss" in values:
        count = sum(k.startswith("eval/loss_t") for k in values)
        buckets = " ".join(f"{values[f'eval/loss_t{j}']:.4f}" for j in range(count))
        parts.append(f"loss {values['eval/loss']:.5f} (by t: {buckets})")
    if "eval/si_sdri_median" in values:
        parts.append(
            f"SI-SDRi median {values['eval/si_sdri_median']:.2f} dB, "
            f"mean {values['eval/si_sdri_mean']:.2f} dB"
        )
    parts.append(f"{values['eval/seconds']:.1f} s")
    return " | ".join(parts)


def read_best(workdir) -> dict | None:
    """WORKDIR/best.json, or None when the run keeps no best checkpoint (yet)."""
    path = as_path(workdir) / BEST_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())
