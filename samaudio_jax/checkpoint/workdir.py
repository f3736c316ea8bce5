"""The training workdir layout: WORKDIR/checkpoints/<step> (Orbax: train state, config,
layout, data position; orbax_io.py) and WORKDIR/frozen/ (the parts training never changes).

frozen/ is written once, when a run starts from loaded weights (`import`, `train --init_from`):
  model.safetensors  audio_codec.*, vision_encoder.* and the release's carried tensors
                     (span predictor, rankers), in the source's names and dtypes
  latent_scale.npy   the frames codec's latent scale (when the codec is the frames one)
  config.json        the source's release config.json sections (vision encoder name, ...)
  dtypes.json        the source file's dtype per tensor name (written last: frozen/ is whole
                     only when it exists)
The run's config points codec.checkpoint (and vision.checkpoint, codec.latent_scale) here, so
train, eval, separate and export of the workdir all use the source's codec, never a random
one; readers also look here first, so a workdir that moved (e.g. to a bucket) still finds it.

Readers open Orbax read-only (nothing created, nothing cleaned): a trainer may be saving into
the same workdir while `export`, `eval` or `separate` read it. Only the trainable parameters
(EMA when the checkpoint holds them) are restored, never the optimizer state.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import orbax.checkpoint as ocp

from samaudio_jax.checkpoint.bundle import Bundle, config_from_dict
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path
from samaudio_jax.state_dict_io import (
    SAFETENSORS_FILE,
    read_state_dict,
    safetensors_keys,
    write_state_dict,
)

FROZEN_DIR = "frozen"
DTYPES_FILE = "dtypes.json"
LATENT_SCALE_FILE = "latent_scale.npy"


def checkpoint_dir(workdir) -> Path:
    return as_path(workdir) / "checkpoints"


def frozen_dir(workdir) -> Path:
    return as_path(workdir) / FROZEN_DIR


def is_workdir(path) -> bool:
    return checkpoint_dir(path).is_dir() or (frozen_dir(path) / DTYPES_FILE).is_file()


def _reader(directory) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        read_only=True, create=False, cleanup_tmp_directories=False
    )
    return ocp.CheckpointManager(directory, options=options)


def latest_step(workdir) -> int | None:
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        return None
    with _reader(directory) as manager:
        return manager.latest_step()


def saved_config(workdir, step: int):
    with _reader(checkpoint_dir(workdir)) as manager:
        raw = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return config_from_dict(raw["config"], "config")


def _restore_params(workdir, step: int) -> dict:
    """{"flow": ..., ["text": ...]} pure-dict trees (EMA when saved), on the first device."""
    path = checkpoint_dir(workdir) / str(step) / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    which = "ema" if "ema" in tree else "params"
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = {
        which: jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree[which]
        )
    }
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
    out = checkpointer.restore(
        path,
        args=ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=True),
    )
    return out[which]


def _dotted(tree: dict) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_leaves_with_path(tree)
    return {
        ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): np.asarray(v)
        for path, v in flat
    }


# ------------------------------------------------------------------------------ frozen/


def write_frozen_parts(bundle: Bundle, workdir, *, write: bool = True) -> dict[str, str]:
    """Writes WORKDIR/frozen/ from `bundle` (only when `write`: one process of a multi-host
    run writes, all compute the result) and returns the config fields that must point at it:
    {"codec.checkpoint" | "codec.latent_scale" | "vision.checkpoint": location}."""
    from samaudio_jax.checkpoint import release_dir

    out = frozen_dir(workdir)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    pointers = {}
    everything = release_dir.state_dict(bundle)
    prefixes = (release_dir.CODEC_PREFIX, release_dir.VISION_PREFIX, *release_dir.CARRIED_PREFIXES)
    frozen = {
        k: v
        for k, v in everything.items()
        if k.startswith(prefixes) and k != release_dir.LATENT_SCALE_KEY
    }
    if frozen and write:
        write_state_dict(frozen, out / SAFETENSORS_FILE)
    if bundle.config.codec.kind == "frames" and bundle.codec is not None:
        if write:
            from samaudio_jax.codec import frames

            scale = np.asarray(bundle.codec.scale[...], np.float32)
            frames.save_latent_scale(str(out / LATENT_SCALE_FILE), scale)
        pointers["codec.latent_scale"] = str(out / LATENT_SCALE_FILE)
    if any(k.startswith(release_dir.CODEC_PREFIX) for k in frozen):
        pointers["codec.checkpoint"] = str(out)
    if any(k.startswith(release_dir.VISION_PREFIX) for k in frozen):
        pointers["vision.checkpoint"] = str(out)
    if write:
        text = json.dumps(bundle.release_config, indent=2)
        atomic_write_text(out / release_dir.CONFIG_FILE, text)
        atomic_write_text(out / DTYPES_FILE, json.dumps(bundle.dtypes, indent=2, sort_keys=True))
    return pointers


def with_frozen_parts(config, workdir, *, override: bool = False):
    """`config` with codec.checkpoint / codec.latent_scale / vision.checkpoint pointing at
    WORKDIR/frozen/ where it holds that part and the config names none (or always, when
    `override`: readers trust the workdir's own copy). A copy; `config` is unchanged."""
    out = frozen_dir(workdir)
    config = config.copy_and_resolve_references()
    if not (out / DTYPES_FILE).is_file():
        return config
    if config.codec.kind == "frames":
        if (override or not config.codec.latent_scale) and (out / LATENT_SCALE_FILE).is_file():
            config.codec.latent_scale = str(out / LATENT_SCALE_FILE)
        return config
    keys = _frozen_keys(out)
    if (override or not config.codec.checkpoint) and any(
        k.startswith("audio_codec.") for k in keys
    ):
        config.codec.checkpoint = str(out)
    if (override or not config.vision.checkpoint) and any(
        k.startswith("vision_encoder.") for k in keys
    ):
        config.vision.checkpoint = str(out)
    return config


def _frozen_keys(out: Path) -> list[str]:
    if not (out / SAFETENSORS_FILE).is_file():
        return []
    return safetensors_keys(out / SAFETENSORS_FILE)  # the header only, no tensor read


# ------------------------------------------------------------------------------ read


def read_workdir(workdir, step: int | None = None, *, t5_dir: str | None = None) -> Bundle:
    """The Bundle of the workdir's checkpoint `step` (latest when None): trained parameters
    (EMA when saved) from Orbax, frozen parts from WORKDIR/frozen/ or the config."""
    from flax import nnx

    from samaudio_jax.checkpoint import release_dir
    from samaudio_jax.codec.factory import build_codec
    from samaudio_jax.model.factory import build_flow
    from samaudio_jax.text.factory import build_text_encoder

    chosen = latest_step(workdir) if step is None else step
    if chosen is None:
        raise ValueError(
            f"--workdir: {workdir} holds no training checkpoint (expected "
            f"{checkpoint_dir(workdir)}/<step>); train first"
        )
    try:
        config = saved_config(workdir, chosen)
    except FileNotFoundError:
        raise ValueError(f"--step: {workdir} has no checkpoint {chosen}") from None
    out = frozen_dir(workdir)
    config = with_frozen_parts(config, workdir, override=True)
    if t5_dir:
        config.text.t5_dir = str(t5_dir)
    params = _restore_params(workdir, chosen)
    model = build_flow(config.model, _dotted(params["flow"]), seed=int(config.seed))
    text = None
    if config.text.kind == "small" or config.text.t5_dir:
        with nnx.use_eager_sharding(False):
            text = build_text_encoder(config.text, rngs=nnx.Rngs(int(config.seed) + 1))
    if "text" in params and text is not None:
        state = nnx.state(text, nnx.Param)
        nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, params["text"]))
        nnx.update(text, state)
    frozen = {}
    if (out / SAFETENSORS_FILE).is_file():
        frozen = read_state_dict(out / SAFETENSORS_FILE)[0]
    vision = None
    if any(k.startswith(release_dir.VISION_PREFIX) for k in frozen):
        from samaudio_jax.vision.factory import read_vision_part

        vision = read_vision_part(out)
    dtypes, release = {}, {}
    if (out / DTYPES_FILE).is_file():
        dtypes = json.loads((out / DTYPES_FILE).read_text())
        release = json.loads((out / release_dir.CONFIG_FILE).read_text())
    return Bundle(
        config=config,
        model=model,
        codec=build_codec(config.codec),
        text_encoder=text,
        vision_part=vision,
        carried={k: v for k, v in frozen.items() if k.startswith(release_dir.CARRIED_PREFIXES)},
        dtypes=dtypes,
        release_config=release,
        source=str(as_path(workdir)),
        step=chosen,
    )
