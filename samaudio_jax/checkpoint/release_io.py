"""Reading and writing the release's checkpoint directory (config.json + checkpoint.pt or
model.safetensors) for the flow network; other parts plug in by key prefix.

The flow network's keys follow flow_keys.py. Keys under a registered prefix (audio_codec.,
vision_encoder., ...) go to that part's importer when one is registered, and are otherwise
reported as skipped (ReleaseReport.skipped, logged). Any other key, a missing key or a shape
mismatch is an error naming the key.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from samaudio_jax.checkpoint import flow_keys
from samaudio_jax.checkpoint.release_config import (
    check_model_config,
    model_config_from_release,
    read_release_config,
    release_config_from_model,
)
from samaudio_jax.config_schema import default_config
from samaudio_jax.io_atomic import atomic_write_bytes, atomic_write_stream, atomic_write_text
from samaudio_jax.model.flow import SAMAudioFlow
from samaudio_jax.paths import as_path, check_reachable

log = logging.getLogger(__name__)

PT_FILE, SAFETENSORS_FILE, CONFIG_FILE = "checkpoint.pt", "model.safetensors", "config.json"
FORMATS = {"pt": PT_FILE, "safetensors": SAFETENSORS_FILE}


@dataclasses.dataclass(frozen=True)
class ReleasePart:
    """A part of the release file owned by another package (codec, vision encoder, ...).

    load(state, release_config) receives the part's arrays with the prefix stripped and
    returns whatever that package builds; export(obj) returns such arrays (prefix stripped).
    Either may be None: without `load` the keys are reported as skipped.
    """

    name: str
    prefix: str
    load: Callable[[dict[str, np.ndarray], dict], Any] | None = None
    export: Callable[[Any], dict[str, np.ndarray]] | None = None


_PARTS: dict[str, ReleasePart] = {}


def register_part(part: ReleasePart) -> None:
    """Registers (or replaces) the handler for keys starting with part.prefix."""
    for other in _PARTS.values():
        if other.name != part.name and (
            other.prefix.startswith(part.prefix) or part.prefix.startswith(other.prefix)
        ):
            raise ValueError(f"part {part.name!r}: prefix {part.prefix!r} overlaps {other.name!r}")
    _PARTS[part.name] = part


def registered_parts() -> dict[str, ReleasePart]:
    return dict(_PARTS)


for _name, _prefix in (
    ("audio_codec", "audio_codec."),
    ("vision_encoder", "vision_encoder."),
    ("text_encoder", "text_encoder."),
    ("span_predictor", "span_predictor."),
    ("visual_ranker", "visual_ranker."),
    ("text_ranker", "text_ranker."),
):
    register_part(ReleasePart(_name, _prefix))


@dataclasses.dataclass
class ReleaseReport:
    """What load_release did: which file, which keys went where, the file's dtypes."""

    path: str
    file: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    parts: dict[str, Any] = dataclasses.field(default_factory=dict)
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- file I/O


def _torch_to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _numpy_to_torch(a: np.ndarray):
    import torch

    a = np.array(a, copy=True, order="C")  # writable and contiguous, as torch wants
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """The state dict of a release directory (model.safetensors preferred) or of one file
    (local or behind a URL: the file is read into memory, never copied to local disk)."""
    check_reachable(path)
    path = as_path(path)
    if path.is_dir():
        candidates = [path / SAFETENSORS_FILE, path / PT_FILE]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: holds neither {SAFETENSORS_FILE} nor {PT_FILE}")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"release checkpoint: no such file: {path}")
    if path.suffix == ".safetensors":
        import safetensors.numpy

        data = path.read_bytes()
        try:
            return safetensors.numpy.load(data), str(path)
        except (TypeError, ValueError, KeyError):  # e.g. bfloat16, which numpy lacks
            import safetensors.torch

            tensors = safetensors.torch.load(data)
            return {k: _torch_to_numpy(v) for k, v in tensors.items()}, str(path)
    import torch

    obj = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ValueError(f"{path}: expected a flat torch state_dict (key -> tensor)")
    return {k: _torch_to_numpy(v) for k, v in obj.items()}, str(path)


def write_state_dict(state: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Writes `state` as checkpoint.pt (torch.save) or .safetensors, atomically."""
    path = as_path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        tensors = {k: _numpy_to_torch(v) for k, v in state.items()}
        atomic_write_bytes(path, save(tensors))
    else:
        import torch

        tensors = {k: _numpy_to_torch(v) for k, v in state.items()}
        atomic_write_stream(path, lambda f: torch.save(tensors, f))


# ----------------------------------------------------------------- flow <-> state dict


def _param_paths(model: SAMAudioFlow) -> dict[str, nnx.Variable]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(p) for p in path): var for path, var in flat}


def _scanned_path(path: str) -> str:
    parts = path.split(".")
    return ".".join(parts[:2] + parts[3:])  # drop the block index after "transformer.layers"


def abstract_flow_params(m: ml_collections.ConfigDict) -> dict[str, jax.ShapeDtypeStruct]:
    abstract = nnx.eval_shape(lambda: SAMAudioFlow(m, rngs=nnx.Rngs(0)))
    return {k: v.get_value() for k, v in _param_paths(abstract).items()}


def flow_arrays_from_state_dict(
    state: dict[str, np.ndarray], m: ml_collections.ConfigDict, source: str = "state dict"
) -> dict[str, np.ndarray]:
    """Our parameter arrays (path -> array, stacked blocks when m.scan_layers) from the
    release's flow keys in `state`. Every expected key must be present with its shape."""
    targets = abstract_flow_params(m)
    rules = flow_keys.flow_key_rules(m)
    scanned = bool(m.scan_layers)
    per_block: dict[str, list[np.ndarray]] = {}
    out: dict[str, np.ndarray] = {}
    for release_key, path, tr in flow_keys.expand_layers(rules, m.num_layers):
        target_path = _scanned_path(path) if scanned and ".layers." in path else path
        if target_path not in targets:
            raise AssertionError(f"key map names {path}, which the model lacks")
        shape = targets[target_path].shape
        shape = shape[1:] if scanned and ".layers." in path else shape
        if release_key not in state:
            raise KeyError(f"{source}: missing key {release_key!r}")
        arr = np.asarray(state[release_key])
        expected = tr.release_shape(shape)
        if arr.shape != expected:
            raise ValueError(
                f"{source}: key {release_key!r} has shape {arr.shape}, expected {expected}"
            )
        ours = tr.to_ours(arr, shape)
        if scanned and ".layers." in path:
            per_block.setdefault(target_path, []).append(ours)
        else:
            out[target_path] = ours
    for path, blocks in per_block.items():
        out[path] = np.stack(blocks)
    missing = set(targets) - set(out)
    if missing:
        raise AssertionError(f"key map leaves parameters unset: {sorted(missing)}")
    return out


def flow_release_keys(m: ml_collections.ConfigDict) -> list[str]:
    return [k for k, _, _ in flow_keys.expand_layers(flow_keys.flow_key_rules(m), m.num_layers)]


def build_flow(
    m: ml_collections.ConfigDict, arrays: dict[str, np.ndarray], seed: int = 0
) -> SAMAudioFlow:
    """A SAMAudioFlow holding `arrays` (cast to m.param_dtype) without a random init of them."""
    graphdef, abstract_params, abstract_rest = nnx.split(
        nnx.eval_shape(lambda: SAMAudioFlow(m, rngs=nnx.Rngs(seed))), nnx.Param, ...
    )

    def concrete(leaf):  # the dropout stream's key and counter: no random init needed
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key(seed)
        return jnp.zeros(leaf.shape, leaf.dtype)

    rest = jax.tree.map(concrete, abstract_rest)
    flat = nnx.to_flat_state(abstract_params)
    filled = []
    for path, var in flat:
        key = ".".join(str(p) for p in path)
        value = jnp.asarray(arrays[key], dtype=var.get_value().dtype)
        filled.append((path, var.replace(value)))
    params = nnx.from_flat_state(filled)
    return nnx.merge(graphdef, params, rest)


def flow_state_dict(model: SAMAudioFlow, m: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The flow network's parameters under the release's key names and layouts."""
    params = {k: np.asarray(jax.device_get(v[...])) for k, v in _param_paths(model).items()}
    scanned = bool(m.scan_layers)
    out = {}
    for release_key, path, tr in flow_keys.expand_layers(flow_keys.flow_key_rules(m), m.num_layers):
        if scanned and ".layers." in path:
            index = int(path.split(".")[2])
            arr = params[_scanned_path(path)][index]
        else:
            arr = params[path]
        out[release_key] = np.ascontiguousarray(tr.to_release(arr))
    return out


# ------------------------------------------------------------------------ public API


def _split_keys(state: dict[str, np.ndarray], flow_keys_set: set[str], source: str):
    by_part: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key in state:
        if key in flow_keys_set:
            continue
        part = next((p for p in _PARTS.values() if key.startswith(p.prefix)), None)
        if part is None:
            unknown.append(key)
        else:
            by_part.setdefault(part.name, {})[key[len(part.prefix) :]] = state[key]
    if unknown:
        raise KeyError(
            f"{source}: unexpected key(s) {sorted(unknown)[:10]}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        )
    return by_part


def load_release(
    path: str | os.PathLike,
    config: ml_collections.ConfigDict | None = None,
    *,
    seed: int = 0,
    parts: Iterable[str] | None = None,
) -> tuple[SAMAudioFlow, ml_collections.ConfigDict, ReleaseReport]:
    """Reads a release directory into a SAMAudioFlow.

    `config` may be a full experiment config (with .model) or a config.model; its
    architecture fields must agree with config.json (an error names the first that does
    not); numerics fields (dtype, param_dtype, scan_layers, remat_policy, ...) are taken
    from it. Without `config` the model config comes from config.json over the defaults.
    `parts` names the registered parts to import (None = every part with an importer);
    the keys of any other part are reported in `report.skipped`, not dropped silently.
    Returns (model, config of the same kind as given (full when None), report).
    """
    check_reachable(path)  # an unreachable bucket is named, not taken for a missing file
    path = as_path(path)
    if path.is_dir():
        config_file = path / CONFIG_FILE
    elif path.is_file():
        config_file = path.parent / CONFIG_FILE
    else:  # not the parent's config.json: name the directory that is missing
        raise FileNotFoundError(f"release checkpoint: no such file or directory: {path}")
    release = read_release_config(config_file)
    if config is None:
        full = default_config()
        full.model = model_config_from_release(release, source=str(config_file))
        result_config, m = full, full.model
    else:
        m = config.model if "model" in config else config
        check_model_config(m, release, source=str(config_file))
        result_config = config
    state, file = read_state_dict(path)
    report = ReleaseReport(path=str(path), file=file)
    report.dtypes = {k: str(v.dtype) for k, v in state.items()}
    arrays = flow_arrays_from_state_dict(state, m, source=file)
    flow_set = set(flow_release_keys(m))
    by_part = _split_keys(state, flow_set, file)
    report.loaded = [k for k in state if k in flow_set]
    for name, sub in by_part.items():
        part = _PARTS[name]
        if part.load is None or (parts is not None and name not in parts):
            report.skipped[name] = sorted(part.prefix + k for k in sub)
            log.info("%s: skipped %d %s* keys (not imported)", file, len(sub), part.prefix)
        else:
            report.parts[name] = part.load(sub, release)
    model = build_flow(m, arrays, seed=seed)
    return model, result_config, report


def save_release(
    model: SAMAudioFlow,
    config: ml_collections.ConfigDict,
    path: str | os.PathLike,
    formats: Iterable[str] = ("pt",),
    *,
    parts: dict[str, Any] | None = None,
    dtypes: str | dict[str, str] | None = None,
) -> list[str]:
    """Writes config.json and the state dict in each of `formats` ("pt", "safetensors").

    `parts` maps a registered part name to the object its exporter writes. `dtypes` is one
    dtype name for every key, or key -> dtype name (e.g. ReleaseReport.dtypes, to write the
    file's own dtypes back); by default each array keeps its parameter dtype. Returns the
    files written.
    """
    m = config.model if "model" in config else config
    formats = tuple(formats)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"formats: expected some of {sorted(FORMATS)}, got {fmt!r}")
    state = flow_state_dict(model, m)
    for name, obj in (parts or {}).items():
        part = _PARTS.get(name)
        if part is None or part.export is None:
            raise ValueError(f"parts: no exporter registered for {name!r}")
        for k, v in part.export(obj).items():
            state[part.prefix + k] = np.asarray(v)
    if dtypes is not None:
        for k in state:
            name = dtypes if isinstance(dtypes, str) else dtypes.get(k)
            if name is not None:
                state[k] = _cast(state[k], name)
    out_dir = as_path(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    text = json.dumps(release_config_from_model(m), indent=2) + "\n"
    atomic_write_text(out_dir / CONFIG_FILE, text)
    written.append(str(out_dir / CONFIG_FILE))
    for fmt in formats:
        target = out_dir / FORMATS[fmt]
        write_state_dict(state, target)
        written.append(str(target))
    return written


def _cast(a: np.ndarray, name: str) -> np.ndarray:
    if name == "bfloat16":
        import ml_dtypes

        return a.astype(ml_dtypes.bfloat16)
    return a.astype(np.dtype(name))
