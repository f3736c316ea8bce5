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
that decide the meaning of the weights (model, codec, text, EMA); a difference raises
ConfigMismatchError naming the first field that differs.
"""

from __future__ import annotations

import json

import grain
import ml_collections
import orbax.checkpoint as ocp

from samaudio_jax.paths import as_path

# Config fields that may change between a save and a resume (paths, schedules, meshes).
_FREE_FIELDS = ("codec.checkpoint", "codec.dtype", "text.t5_dir", "text.bucket_length")
_CHECKED_SECTIONS = ("model", "codec", "text")
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


def first_config_difference(saved: dict, current: dict) -> tuple[str, object, object] | None:
    """(field, saved value, current value) of the first field that matters and differs."""
    a, b = _flatten(saved), _flatten(current)
    keys = sorted(
        k
        for k in set(a) | set(b)
        if (k.split(".")[0] in _CHECKED_SECTIONS or k in _CHECKED_FIELDS) and k not in _FREE_FIELDS
    )
    for k in keys:
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            return k, a.get(k, "<absent>"), b.get(k, "<absent>")
    return None


class TrainCheckpointer:
    """An Orbax CheckpointManager configured from config.train."""

    def __init__(self, directory, config: ml_collections.ConfigDict):
        self.directory = as_path(directory)  # a URL stays a URL: Orbax writes there
        self.config = config
        train = config.train
        if int(train.checkpoint_every) < 1:
            raise ValueError(
                f"config.train.checkpoint_every: expected >= 1, got {train.checkpoint_every}"
            )
        options = ocp.CheckpointManagerOptions(
            max_to_keep=int(train.keep_checkpoints),
            save_interval_steps=int(train.checkpoint_every),
            enable_async_checkpointing=bool(train.async_checkpointing),
            create=True,
            cleanup_tmp_directories=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def should_save(self, step: int) -> bool:
        return self.manager.should_save(step)

    def reached_preemption(self, step: int) -> bool:
        return self.manager.reached_preemption(step)

    def save(self, step: int, state: dict, data_iterator=None, *, force: bool = False) -> bool:
        items = {
            "state": ocp.args.StandardSave(state),
            "config": ocp.args.JsonSave(config_to_dict(self.config)),
        }
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def saved_config(self, step: int) -> dict:
        out = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return out["config"]

    def check_config(self, step: int) -> None:
        diff = first_config_difference(self.saved_config(step), config_to_dict(self.config))
        if diff is not None:
            field, saved, current = diff
            raise ConfigMismatchError(
                f"checkpoint {self.directory}/{step} was written by a different config: "
                f"{field} is {saved!r} there but {current!r} here. Use another --workdir, "
                f"or set --config.{field}={saved!r} to resume it."
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
