"""Builds SAMAudioFlow from the release's flow tensors and back (keymaps/flow.py's rules).

With config.model.scan_layers the blocks' parameters are stacked on a leading axis; the
rules name unscanned paths, so reading stacks the blocks and writing slices them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from samaudio_jax.keymaps import rules as rules_lib
from samaudio_jax.keymaps.flow import flow_rules
from samaudio_jax.model import lora
from samaudio_jax.model.flow import SAMAudioFlow


def _param_paths(model: SAMAudioFlow) -> dict[str, nnx.Variable]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(p) for p in path): var for path, var in flat}


def _scanned_path(path: str) -> str:
    parts = path.split(".")
    return ".".join(parts[:2] + parts[3:])  # drop the block index after "transformer.layers"


def _stacked(path: str, m) -> bool:
    return bool(m.scan_layers) and ".layers." in path


def abstract_flow_params(m: ml_collections.ConfigDict) -> dict[str, jax.ShapeDtypeStruct]:
    """Our parameter path -> ShapeDtypeStruct for config.model `m` (nothing materialised)."""
    abstract = nnx.eval_shape(lambda: SAMAudioFlow(m, rngs=nnx.Rngs(0)))
    return {k: v.get_value() for k, v in _param_paths(abstract).items()}


def flow_release_keys(m: ml_collections.ConfigDict) -> list[str]:
    return [r.release for r in flow_rules(m)]


def flow_arrays_from_state_dict(
    state: dict[str, np.ndarray], m: ml_collections.ConfigDict, source: str = "state dict"
) -> dict[str, np.ndarray]:
    """Our parameter arrays (stacked blocks when m.scan_layers) from the release's flow keys in
    `state`: every key present with its shape (KeyError / ValueError naming the key)."""
    targets = abstract_flow_params(m)
    rules = flow_rules(m)
    shapes = {}
    for r in rules:
        if _stacked(r.ours, m):
            shapes[r.ours] = targets[_scanned_path(r.ours)].shape[1:]
        else:
            shapes[r.ours] = targets[r.ours].shape
    unscanned = rules_lib.to_ours(state, rules, shapes, source=source)
    out, per_block = {}, {}
    for r in rules:  # rule order is block order within each stacked path
        if _stacked(r.ours, m):
            per_block.setdefault(_scanned_path(r.ours), []).append(unscanned[r.ours])
        else:
            out[r.ours] = unscanned[r.ours]
    out.update({path: np.stack(blocks) for path, blocks in per_block.items()})
    missing = set(targets) - set(out)
    for path in sorted(k for k in missing if lora.SUFFIX + "." in k):
        # LoRA adapters are not release tensors: a fine-tune starts them fresh (B = 0).
        t = targets[path]
        out[path] = lora.fresh_adapter_array(path, t.shape, t.dtype, stacked=_stacked(path, m))
        missing.discard(path)
    if missing:
        raise AssertionError(f"key map leaves parameters unset: {sorted(missing)}")
    return out


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
    filled = []
    for path, var in nnx.to_flat_state(abstract_params):
        key = ".".join(str(p) for p in path)
        filled.append((path, var.replace(jnp.asarray(arrays[key], dtype=var.get_value().dtype))))
    return nnx.merge(graphdef, nnx.from_flat_state(filled), rest)


def flow_state_dict(model: SAMAudioFlow, m: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The flow network's parameters under the release's key names and layouts."""
    params = {k: np.asarray(jax.device_get(v[...])) for k, v in _param_paths(model).items()}
    unscanned = {}
    for r in flow_rules(m):
        if _stacked(r.ours, m):
            unscanned[r.ours] = params[_scanned_path(r.ours)][int(r.ours.split(".")[2])]
        else:
            unscanned[r.ours] = params[r.ours]
    return rules_lib.to_release(unscanned, flow_rules(m))
