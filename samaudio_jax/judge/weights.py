"""Moving release-named tensors into and out of an NNX module, by KeyRule lists.

`import_state` uses every key of the state dict exactly once: a key no rule names is a
KeyError naming it (so a wrong file or a config that does not match fails loudly), a missing
one a KeyError naming it, a wrong shape a ValueError naming key and shapes. Values are stored
unchanged (transposes only), so `export_state` gives the same bytes back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.keymaps.rules import KeyRule, to_ours, to_release


def variables(module: nnx.Module) -> dict[str, nnx.Variable]:
    """{"a.0.b": variable} for every variable of `module`."""
    return {".".join(str(p) for p in path): v for path, v in nnx.to_flat_state(nnx.state(module))}


def shell(build):
    """`build()`'s module with shapes only (no random draws): an import target."""
    return nnx.eval_shape(build)


def random_fill(module, seed: int = 0) -> None:
    """Random weights drawn on the host for every variable of `module` (a `shell` included):
    kernels N(0, 1/fan_in), biases and embeddings N(0, 0.02^2), norm scales 1 + N(0, 0.05^2),
    Snake alphas 1, weight-norm gains ||v|| (so the folded weight is v), stored statistics
    mean 0 / std 1. Far cheaper than running every initializer eagerly at full size."""
    rng = np.random.default_rng(seed)
    found = variables(module)
    for name, var in found.items():
        value = var.get_value()
        shape, dtype = tuple(value.shape), value.dtype
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("mean",):
            arr = np.zeros(shape)
        elif leaf in ("std", "alpha"):
            arr = np.ones(shape)
        elif leaf == "weight_g":
            continue  # after its weight_v
        elif leaf == "bias" or leaf.endswith("_bias"):
            arr = 0.02 * rng.standard_normal(shape, dtype=np.float32)
        elif leaf in ("scale", "weight") or "norm" in name:
            arr = 1.0 + 0.05 * rng.standard_normal(shape)
        elif leaf in ("kernel", "weight_v") and len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1])) if leaf == "kernel" else int(np.prod(shape[1:]))
            arr = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan_in)
        else:
            arr = 0.02 * rng.standard_normal(shape, dtype=np.float32)
        var.set_value(jnp.asarray(np.asarray(arr, np.float32), dtype))
    for name, var in found.items():
        if name.endswith(".weight_g"):
            v = np.asarray(found[name[: -len("weight_g")] + "weight_v"].get_value(), np.float32)
            g = np.sqrt(np.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
            var.set_value(jnp.asarray(g, var.get_value().dtype))


def import_state(module, state: dict, rules: list[KeyRule], source: str, derived=()) -> None:
    """Sets every variable of `module` (a built model or a `shell`) from `state`; `derived`
    names the variables the caller computes afterwards (no tensor of their own)."""
    names = set()
    for r in rules:
        names.update((r.release, *r.aliases))
    unused = sorted(set(state) - names)
    if unused:
        more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
        raise KeyError(f"{source}: unexpected key(s) {unused[:5]}{more} (no parameter takes them)")
    found = variables(module)
    missing = sorted({r.ours for r in rules} - set(found))
    if missing:  # a rule list that does not fit the module: a bug here, not in the file
        raise AssertionError(f"key map names absent parameters {missing[:5]}")
    uncovered = sorted(set(found) - {r.ours for r in rules} - set(derived))
    if uncovered:
        raise AssertionError(f"key map leaves parameters without a tensor: {uncovered[:5]}")
    shapes = {r.ours: tuple(found[r.ours].shape) for r in rules}
    for ours, arr in to_ours(state, rules, shapes, source=source).items():
        found[ours].set_value(jnp.asarray(arr))
    for name in derived:  # a shell's placeholder becomes a concrete (zero) array to fill
        var = found[name]
        if isinstance(var.get_value(), jax.ShapeDtypeStruct):
            var.set_value(jnp.zeros(var.shape, var.get_value().dtype))


def export_state(module, rules: list[KeyRule]) -> dict[str, np.ndarray]:
    found = variables(module)
    params = {r.ours: np.asarray(jax.device_get(found[r.ours].get_value())) for r in rules}
    return to_release(params, rules)
