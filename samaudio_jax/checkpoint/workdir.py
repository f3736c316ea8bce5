"""A training workdir's latest Orbax checkpoint as a Separator, and a Separator as a
step-0 Orbax checkpoint that `train` resumes (fine-tunes) from.

EMA parameters are used when the checkpoint holds them. The config comes from the
checkpoint itself, so the reader needs no config file.

Readers open Orbax read-only (nothing created, nothing cleaned): a trainer may be saving into
the same workdir while `export`, `eval` or `separate` read it.
"""

from __future__ import annotations

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from samaudio_jax.config_schema import default_config
from samaudio_jax.paths import Path, as_path
from samaudio_jax.sample.loading import Separator, _merge, build_separator


def _checkpoint_dir(workdir) -> Path:
    return as_path(workdir) / "checkpoints"


def _reader(directory) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        read_only=True, create=False, cleanup_tmp_directories=False
    )
    return ocp.CheckpointManager(directory, options=options)


def latest_step(workdir) -> int | None:
    directory = _checkpoint_dir(workdir)
    if not directory.is_dir():
        return None
    with _reader(directory) as manager:
        return manager.latest_step()


def saved_config(workdir, step: int):
    with _reader(_checkpoint_dir(workdir)) as manager:
        raw = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    config = default_config()
    _merge(config, raw["config"], "config")
    return config


def _set_params(module: nnx.Module, tree: dict) -> None:
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, tree))
    nnx.update(module, state)


def separator_from_workdir(workdir, step: int | None = None) -> tuple[Separator, int]:
    """(separator, step) from the workdir's checkpoint `step` (latest when None)."""
    from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    step = latest_step(workdir) if step is None else step
    if step is None:
        raise ValueError(
            f"--workdir: {workdir} holds no training checkpoint (expected "
            f"{_checkpoint_dir(workdir)}/<step>); train first"
        )
    config = saved_config(workdir, step)
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    ckpt = TrainCheckpointer(_checkpoint_dir(workdir), config, read_only=True)
    try:
        state, _ = ckpt.restore(step, setup.abstract_state)
    finally:
        ckpt.close()
    params = state.get("ema", state["params"])
    separator = build_separator(config, seed=int(config.seed))
    _set_params(separator.model, params["flow"])
    if "text" in params:
        _set_params(separator.text_encoder, params["text"])
    return separator, step


def _params_of(module: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def write_step0_checkpoint(separator: Separator, workdir) -> None:
    """A step-0 train state holding the separator's weights (fresh optimizer state)."""
    from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    config = separator.config
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    params = {"flow": _params_of(separator.model)}
    if setup.text_trainable:
        params["text"] = _params_of(separator.text_encoder)
    params = jax.tree.map(
        lambda x, s: jax.device_put(np.asarray(x, dtype=s.dtype), s.sharding),
        params,
        setup.abstract_state["params"],
    )
    state = {
        "step": jax.device_put(np.zeros((), np.int32), setup.state_shardings["step"]),
        "params": params,
        "opt_state": jax.jit(setup.tx.init, out_shardings=setup.state_shardings["opt_state"])(
            params
        ),
    }
    if "ema" in setup.abstract_state:
        state["ema"] = jax.tree.map(lambda x: x.copy(), params)
    from samaudio_jax.checkpoint.lock import WorkdirLock, WorkdirLockedError

    # A writer like train: hold the workdir's lock, so a trainer running there is named
    # (and its in-progress save is not cleaned by this manager's start-up).
    try:
        lock = WorkdirLock(workdir).acquire()
    except WorkdirLockedError as e:
        raise ValueError(f"--workdir: {e}") from None
    try:
        ckpt = TrainCheckpointer(_checkpoint_dir(workdir), config)
        try:
            if ckpt.latest_step() is not None:
                raise ValueError(
                    f"--workdir: {workdir} already holds checkpoints; import into an empty workdir"
                )
            ckpt.save(0, state, force=True)
        finally:
            ckpt.close()
    finally:
        lock.release()
