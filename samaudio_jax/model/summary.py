"""Parameter counts of a flow network built abstractly (nnx.eval_shape: nothing allocated)."""

from __future__ import annotations

import math

import jax
import ml_collections
from flax import nnx

from samaudio_jax.model.flow import SAMAudioFlow


def abstract_flow(config_model: ml_collections.ConfigDict) -> SAMAudioFlow:
    """A SAMAudioFlow whose arrays are ShapeDtypeStructs."""
    return nnx.eval_shape(lambda: SAMAudioFlow(config_model, rngs=nnx.Rngs(0)))


def parameter_counts(config_model: ml_collections.ConfigDict) -> dict[str, int]:
    """Parameters per part ("proj", "transformer.layers", ...) plus "total".

    Parts are the wrapper's top-level modules, with the transformer split into its children.
    """
    model = abstract_flow(config_model)
    counts: dict[str, int] = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        names = [str(p) for p in path]
        part = ".".join(names[:2]) if names[0] == "transformer" else names[0]
        counts[part] = counts.get(part, 0) + math.prod(var.get_value().shape)
    counts["total"] = sum(counts.values())
    return counts


def parameter_bytes(config_model: ml_collections.ConfigDict) -> int:
    model = abstract_flow(config_model)
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
