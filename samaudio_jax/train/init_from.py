"""Starting a run from loaded weights (`train --init_from SOURCE`, `samaudio-jax import`):
the step-0 checkpoint of a fresh workdir holds the source's trainable parameters, and
WORKDIR/frozen/ its frozen parts (codec, vision tower, carried tensors: checkpoint/workdir.py).

The experiment config decides how to train (numerics, optimizer, data); the source decides
what the weights are: an architecture field that differs is an error naming it. The flow
network moves through the release's tensor layout, so a source saved unscanned starts a
scanned run (and the reverse) exactly.
"""

from __future__ import annotations

import jax
import numpy as np

from samaudio_jax.checkpoint.bundle import Bundle, flat_params
from samaudio_jax.checkpoint.lock import WorkdirLock, WorkdirLockedError
from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.checkpoint.release_config import FIELD_MAP
from samaudio_jax.checkpoint.workdir import write_frozen_parts
from samaudio_jax.train import state as state_lib

# Fields that decide the parameters' shapes or meaning: the config and the source must agree.
# The fields that shape the weights: the release's own (release_config.FIELD_MAP, the one
# list the config.json reader checks too) and the project's architecture switches.
_PROJECT_MODEL_FIELDS = ("latent_dim", "head", "text_to_adaln", "padding_aware_groupnorm")
ARCHITECTURE_FIELDS = tuple(f"model.{f}" for f in (*FIELD_MAP, *_PROJECT_MODEL_FIELDS)) + (
    "codec.kind",
    "codec.sample_rate",
    "codec.hop_length",
    "codec.latent_dim",
    "text.kind",
)


def _get(config, dotted: str):
    for name in dotted.split("."):
        config = config[name]
    return config


def check_architecture(config, source: Bundle) -> None:
    """ValueError naming the first architecture field where `config` and the source differ."""
    fields = list(ARCHITECTURE_FIELDS)
    if config.text.kind == "small":
        fields += [f"text.small.{k}" for k in config.text.small]
    for field in fields:
        ours, theirs = _get(config, field), _get(source.config, field)
        if ours != theirs:
            raise ValueError(
                f"--init_from: {field} is {theirs!r} in {source.source} but {ours!r} in the "
                f"config; set --config.{field}={theirs!r} (or use a matching config)"
            )


def config_for_source(config, source: Bundle):
    """`config` (a copy) completed by the source: the T5 it names when the config names none,
    the small text encoder's sizes. Architecture must agree (check_architecture)."""
    check_architecture(config, source)
    config = config.copy_and_resolve_references()
    if config.text.kind == "t5" and not config.text.t5_dir:
        config.text.t5_dir = source.config.text.t5_dir
    return config


def _fill(abstract: dict, dotted: dict[str, np.ndarray], where: str) -> dict:
    def one(path, leaf):
        name = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        if name not in dotted:
            raise ValueError(f"--init_from: {where} has no parameter {name}")
        value = np.asarray(dotted[name])
        if value.shape != leaf.shape:
            raise ValueError(
                f"--init_from: {where} parameter {name} has shape {value.shape}, the config's "
                f"model {leaf.shape}"
            )
        return jax.device_put(value.astype(leaf.dtype), leaf.sharding)

    return jax.tree_util.tree_map_with_path(one, abstract)


def source_params(setup: state_lib.TrainSetup, source: Bundle) -> dict:
    """{"flow": ...[, "text": ...]} in the train state's layout and shardings."""
    from samaudio_jax.model.factory import flow_arrays_from_state_dict, flow_state_dict

    where = source.source or "the source"
    release = flow_state_dict(source.model, source.config.model)
    flow = flow_arrays_from_state_dict(release, setup.config.model, source=where)
    abstract = setup.abstract_state["params"]
    params = {"flow": _fill(abstract["flow"], flow, where)}
    if "text" in abstract:
        text = {k.replace("/", "."): v for k, v in flat_params(source.text_encoder).items()}
        params["text"] = _fill(abstract["text"], text, where)
    return params


def write_step0(config, workdir, source: Bundle, *, mesh=None):
    """Writes WORKDIR/frozen/ and checkpoint 0 holding the source's weights (fresh optimizer
    state). Returns the run's config (pointing at frozen/). The caller holds the workdir lock."""
    from samaudio_jax.parallel.mesh import make_mesh

    config = config_for_source(config, source)
    pointers = write_frozen_parts(source, workdir, write=jax.process_index() == 0)
    for field, location in pointers.items():
        section, name = field.split(".")
        config[section][name] = location
    mesh = mesh if mesh is not None else make_mesh(config.mesh, jax.devices()[:1])
    setup = state_lib.build_setup(config, mesh)
    params = source_params(setup, source)
    state = {
        "step": jax.device_put(np.zeros((), np.int32), setup.state_shardings["step"]),
        "params": params,
        "opt_state": jax.jit(setup.tx.init, out_shardings=setup.state_shardings["opt_state"])(
            params
        ),
    }
    if "ema" in setup.abstract_state:
        state["ema"] = jax.tree.map(lambda x: x.copy(), params)
    ckpt = TrainCheckpointer(f"{workdir}/checkpoints", config)
    try:
        if ckpt.latest_step() is not None:
            raise ValueError(
                f"--workdir: {workdir} already holds checkpoints; start from weights in an "
                "empty workdir"
            )
        ckpt.save(0, state, force=True)
    finally:
        ckpt.close()
    return config


def init_workdir(config, workdir, source: Bundle):
    """write_step0 under the workdir's lock (for `import`; `train` holds the lock itself)."""
    try:
        lock = WorkdirLock(workdir).acquire()
    except WorkdirLockedError as e:
        raise ValueError(f"--workdir: {e}") from None
    try:
        return write_step0(config, workdir, source)
    finally:
        lock.release()


def prepare(config, workdir, init_from=None, *, mesh=None):
    """The run's config for `workdir`: on a fresh workdir with `init_from` (any source
    samaudio_jax.load reads), checkpoint 0 and frozen/ are written from it first; a workdir
    with frozen parts gets the config pointing at them (resumes use the same codec)."""
    from samaudio_jax.checkpoint.load import load_bundle
    from samaudio_jax.checkpoint.workdir import latest_step, with_frozen_parts
    from samaudio_jax.train.latent_scale import wants_measurement

    if init_from is not None and latest_step(workdir) is None:
        config = write_step0(config, workdir, load_bundle(init_from), mesh=mesh)
    # A resumed run started from weights: its checkpoints were trained with the source's
    # latent scale (frozen/), which a config asking for a measurement ('auto') must not
    # replace.
    return with_frozen_parts(config, workdir, override=wants_measurement(config))
