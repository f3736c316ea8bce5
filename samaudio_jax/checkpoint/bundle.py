"""Bundle: every part a checkpoint source holds, as modules (what samaudio_jax.load reads and
each layout's save writes), and the config helpers the layouts share.

A Bundle is the persistence layer's one in-memory form: the experiment config, the flow
network, the codec, the text encoder (None when its weights are not reachable, e.g. a release
without --t5_dir), the PE-Core vision part (None when the source has none), the release
tensors no module here uses (span predictor, rankers, ...: `carried`, kept bit-exact) and the
source file's dtype per release key (`dtypes`: a save writes each tensor back in it).
sample/loading.py's Separator adds the sampling methods.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from samaudio_jax.checkpoint.release_config import read_json_object
from samaudio_jax.config_checks import migrate_saved, validate_config
from samaudio_jax.config_schema import default_config


@dataclasses.dataclass
class Bundle:
    """The parts of a loaded checkpoint (see the module docstring)."""

    config: ml_collections.ConfigDict
    model: nnx.Module
    codec: nnx.Module
    text_encoder: nnx.Module | None
    vision_part: object | None = None  # vision.factory.VisionEncoderPart
    carried: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)
    release_config: dict = dataclasses.field(default_factory=dict)  # the source's config.json
    source: str = ""
    step: int | None = None  # the training step, for a workdir source


def bundle_fields(bundle: Bundle) -> dict:
    """The Bundle's fields as keyword arguments (to build a subclass from it)."""
    return {f.name: getattr(bundle, f.name) for f in dataclasses.fields(Bundle)}


def build_modules(config: ml_collections.ConfigDict, seed: int = 0, *, text: bool = True):
    """(flow, codec, text encoder or None) with fresh weights from `config`; a DACVAE gets
    config.codec.checkpoint's weights (random, with a warning, when it is empty)."""
    from samaudio_jax.codec.factory import build_codec
    from samaudio_jax.model.flow import SAMAudioFlow
    from samaudio_jax.text.factory import build_text_encoder

    validate_config(config)
    model = SAMAudioFlow(config.model, rngs=nnx.Rngs(seed))
    codec = build_codec(config.codec)
    encoder = None
    if text:
        with nnx.use_eager_sharding(False):
            encoder = build_text_encoder(config.text, rngs=nnx.Rngs(seed + 1))
    return model, codec, encoder


# ------------------------------------------------------------------------------ configs


def _tuplify(value):
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def merge_config(base: ml_collections.ConfigDict, update: dict, where: str) -> None:
    """Sets `update`'s fields (nested dicts, JSON lists for tuples) onto `base` in place."""
    for name, value in update.items():
        if (
            isinstance(value, dict)
            and name in base
            and isinstance(base[name], ml_collections.ConfigDict)
        ):
            merge_config(base[name], value, f"{where}.{name}")
        elif name in base and isinstance(base[name], tuple) and isinstance(value, list):
            base[name] = _tuplify(value)
        else:
            try:
                base[name] = value
            except TypeError as err:
                raise ValueError(f"{where}.{name}: {err}") from None


def config_from_dict(data: dict, where: str) -> ml_collections.ConfigDict:
    """The default config with `data` (a saved config) merged on (older files gain new
    fields), checked as a loaded --config is (config_checks.validate_config)."""
    config = default_config()
    merge_config(config, migrate_saved(copy.deepcopy(data)), where)
    return validate_config(config)


def config_from_json(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Reads a config.json (ConfigDict.to_json()) onto the default config."""
    return config_from_dict(read_json_object(path, "the config"), "config")


# ------------------------------------------------------------------------------ params


def flat_params(module: nnx.Module) -> dict[str, np.ndarray]:
    """{"a/b/0/c": array} for every nnx.Param of `module`."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(module, nnx.Param)):
        out["/".join(str(p) for p in path)] = np.asarray(var.get_value())
    return out


def load_params(module: nnx.Module, tensors: dict[str, np.ndarray], where: str) -> None:
    """Sets every nnx.Param of `module` from `tensors` ("a/b/0/c" names); ValueError on
    missing/extra/mis-shaped."""
    state = nnx.state(module, nnx.Param)
    flat = list(nnx.to_flat_state(state))
    names = {"/".join(str(p) for p in path) for path, _ in flat}
    missing = sorted(names - set(tensors))
    extra = sorted(set(tensors) - names)
    if missing or extra:
        raise ValueError(
            f"{where}: parameters do not match the config's model: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    for path, var in flat:
        name = "/".join(str(p) for p in path)
        value = tensors[name]
        current = var.get_value()
        if tuple(value.shape) != tuple(current.shape):
            raise ValueError(
                f"{where}: parameter {name} has shape {tuple(value.shape)}, the config's model "
                f"expects {tuple(current.shape)}"
            )
        var.set_value(jnp.asarray(value, dtype=current.dtype))
    nnx.update(module, state)
