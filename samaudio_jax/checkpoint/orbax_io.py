"""Training checkpoints with Orbax: async saves, keep-N, resume, re-sharding, config check.

One checkpoint step holds three items:
- `state`: the train state {step, params, opt_state[, ema]} (pure-dict trees);
- `config`: the experiment config as JSON;
- `data`: the data iterator's state, one file per process (Grain's checkpoint handler).

The directory may be a URL (gs://, s3://): Orbax writes there directly. Locally Orbax writes
each step under a temporary name and renames it when complete; on GCS (no rename) it writes a
commit_success.txt last. Either way a save that was cut short (SIGKILL, lost host) never looks
like a checkpoint: `latest_step` skips it
and the manager deletes such leftovers when it opens the directory. Restoring takes a
target of ShapeDtypeStructs with shardings, so a run may resume on another mesh shape.

Before any state is read, the saved config is compared with the current one on the fields
that decide the meaning of the weights or of the data stream the run continues: model,
codec, text, vision, data, train.ema_decay, and the process/device layout (a fourth item,
`layout`, holds the process and device counts). A difference raises ConfigMismatchError
naming every field that differs; `allow_changes` (train --allow_config_change) lets named
fields, or whole sections, change on purpose. Free fields (never checked): locations of
frozen weights whose content is the same wherever it lives (codec.checkpoint, text.t5_dir,
vision.checkpoint), compute dtypes and batching of frozen encoders, and data-loader knobs that
do not change the stream (read_threads, prefetch_buffer_size) or only matter to make-shards /
synth (min_input_rate, max_shard_bytes, data.synth.*). data.worker_count is checked: the
saved data-iterator state has the shape of the loader that wrote it. data.dir is checked
too (another directory is, in general, another stream): moving a dataset (e.g. to a bucket)
is resumed with --allow_config_change=data.dir.

Readers (export, eval, separate, import's check) open the manager read-only: they never create
the directory nor clean the temporary directory of a save that a running trainer is writing.
"""

from __future__ import annotations

import json

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from samaudio_jax.paths import as_path

# Config fields that may change between a save and a resume (see the module docstring).
_FREE_FIELDS = (
    "codec.checkpoint",
    "codec.dtype",
    "text.t5_dir",
    "text.bucket_length",
    "vision.checkpoint",
    "vision.dtype",
    "vision.batch_size",
    # Follows model.video_dim (checked) wherever the tower is used (config_checks); configs
    # saved before it was derived hold the old default 1024 with the tower off.
    "vision.output_dim",
    "data.read_threads",
    "data.prefetch_buffer_size",
    "data.min_input_rate",
    "data.max_shard_bytes",
)
_FREE_PREFIXES = ("data.synth.",)
_CHECKED_SECTIONS = ("model", "codec", "text", "vision", "data", "layout")
_CHECKED_FIELDS = ("train.ema_decay",)


class ConfigMismatchError(ValueError):
    """The checkpoint was written by a config that differs in a field that matters."""


def _flatten(tree, prefix=""):
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = tree
    return out


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    """JSON-round-tripped config (tuples become lists), as the checkpoint stores it."""
    return json.loads(config.to_json())


def current_layout() -> dict:
    """The process/device layout a checkpoint records (the `layout.*` fields)."""
    return {"process_count": jax.process_count(), "device_count": jax.device_count()}


def _checked(key: str) -> bool:
    if key in _FREE_FIELDS or key.startswith(_FREE_PREFIXES):
        return False
    return key.split(".")[0] in _CHECKED_SECTIONS or key in _CHECKED_FIELDS


def _allowed(key: str, allow: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allow)


def config_differences(
    saved: dict, current: dict, allow: tuple[str, ...] = ()
) -> list[tuple[str, object, object]]:
    """(field, saved value, current value) of every checked field that differs, in order.

    A field absent from the older side (a checkpoint from before the field existed) is
    not a difference. `allow` names fields or sections (e.g. "data") that may change."""
    a, b = _flatten(saved), _flatten(current)
    out = []
    for k in sorted(set(a) & set(b)):
        if _checked(k) and not _allowed(k, allow) and a[k] != b[k]:
            out.append((k, a[k], b[k]))
    return out


def first_config_difference(saved: dict, current: dict) -> tuple[str, object, object] | None:
    """(field, saved value, current value) of the first field that matters and differs."""
    diffs = config_differences(saved, current)
    return diffs[0] if diffs else None


def parse_allow_list(text: str | None) -> tuple[str, ...]:
    """'data.dir, layout' -> ('data.dir', 'layout'); names must be checked fields/sections."""
    names = tuple(n.strip().removeprefix("config.") for n in (text or "").split(",") if n.strip())
    for n in names:
        if n.split(".")[0] not in _CHECKED_SECTIONS and n not in _CHECKED_FIELDS:
            raise ValueError(
                f"--allow_config_change: {n!r} is not a field the resume check compares "
                f"(sections {', '.join(_CHECKED_SECTIONS)}, fields {', '.join(_CHECKED_FIELDS)})"
            )
    return names


def _keep_best_options(train) -> dict:
    """train.keep_best_by: the keep_checkpoints newest plus the best by that metric (saved
    with the step as Orbax metrics); {} when unset."""
    name = train.get("keep_best_by", "")
    if not name:
        return {}
    from orbax.checkpoint import checkpoint_managers as policies

    mode = str(train.keep_best_mode)

    def value(metrics):
        v = float(metrics[name])  # a NaN evaluation is never the best
        return v if v == v else (float("inf") if mode == "min" else float("-inf"))

    return {
        "max_to_keep": None,  # the policy below replaces it
        "best_fn": value,  # makes Orbax write and read the metrics
        "best_mode": mode,
        "preservation_policy": policies.AnyPreservationPolicy(
            [
                policies.LatestN(n=int(train.keep_checkpoints)),
                policies.BestN(
                    get_metric_fn=value,
                    reverse=mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        ),
    }


class TrainCheckpointer:
    """An Orbax CheckpointManager configured from config.train.

    read_only=True (readers): nothing is created, deleted or cleaned, so a reader beside a
    running trainer never removes the temporary directory of a save in progress.
    `allow_changes`: config fields / sections that may differ on resume (see restore)."""

    def __init__(
        self,
        directory,
        config: ml_collections.ConfigDict,
        *,
        read_only: bool = False,
        allow_changes: tuple[str, ...] = (),
    ):
        self.directory = as_path(directory)  # a URL stays a URL: Orbax writes there
        self.config = config
        self.read_only = read_only
        self.allow_changes = tuple(allow_changes)
        train = config.train
        if int(train.checkpoint_every) < 1:
            raise ValueError(
                f"config.train.checkpoint_every: expected >= 1, got {train.checkpoint_every}"
            )
        if read_only:
            options = ocp.CheckpointManagerOptions(
                read_only=True, create=False, cleanup_tmp_directories=False
            )
        else:
            kwargs = dict(
                max_to_keep=int(train.keep_checkpoints),
                save_interval_steps=int(train.checkpoint_every),
                enable_async_checkpointing=bool(train.async_checkpointing),
                create=True,
                cleanup_tmp_directories=True,
            )
            options = ocp.CheckpointManagerOptions(**{**kwargs, **_keep_best_options(train)})
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def reached_preemption(self, step: int) -> bool:
        return self.manager.reached_preemption(step)

    def save(
        self, step: int, state: dict, data_iterator=None, *, force: bool = False, metrics=None
    ) -> bool:
        """`metrics` ({name: float}): stored with the step for train.keep_best_by."""
        items = {
            "state": ocp.args.StandardSave(state),
            "config": ocp.args.JsonSave(config_to_dict(self.config)),
            "layout": ocp.args.JsonSave(current_layout()),
        }
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        return self.manager.save(
            step, args=ocp.args.Composite(**items), force=force, metrics=metrics
        )

    def best_step(self) -> int | None:
        """The best step by train.keep_best_by among those saved with metrics (None if none)."""
        if not self.config.train.get("keep_best_by", ""):
            return None
        return self.manager.best_step()

    def metrics(self, step: int) -> dict | None:
        return self.manager.metrics(step)

    def saved_config(self, step: int) -> dict:
        out = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return out["config"]

    def saved_layout(self, step: int) -> dict | None:
        """The process/device counts of checkpoint `step` (None: written before they were)."""
        if not (self.directory / str(step) / "layout").exists():
            return None
        out = self.manager.restore(step, args=ocp.args.Composite(layout=ocp.args.JsonRestore()))
        return out["layout"]

    def check_config(self, step: int) -> None:
        """Raises ConfigMismatchError naming every checked field that differs (one line)."""
        saved = self.saved_config(step)
        current = config_to_dict(self.config)
        # Readers (read-only) run on any layout; only a resuming trainer continues the stream.
        layout = None if self.read_only else self.saved_layout(step)
        if layout is not None:
            saved, current = {**saved, "layout": layout}, {**current, "layout": current_layout()}
        diffs = config_differences(saved, current, self.allow_changes)
        if diffs:
            what = "; ".join(f"{f} is {a!r} there but {b!r} here" for f, a, b in diffs)
            names = ",".join(f for f, _, _ in diffs)
            raise ConfigMismatchError(
                f"checkpoint {self.directory}/{step} was written by a different config: {what}. "
                f"Use another --workdir, set the fields back to resume it, or pass "
                f"--allow_config_change={names} to resume with the change."
            )

    def restore(self, step: int, abstract_state: dict, data_iterator=None):
        """(state, data_iterator) from checkpoint `step`, placed as abstract_state's shardings."""
        self.check_config(step)
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        has_data = (self.directory / str(step) / "data").exists()
        if data_iterator is not None and has_data:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        out = self.manager.restore(step, args=ocp.args.Composite(**items))
        return out["state"], (out["data"] if "data" in items else data_iterator)

    def wait_until_finished(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
