"""Logical sharding constraints on activations, active only inside `activation_sharding`.

The model calls `constrain(x, ("batch", "length", None))` at the points where the layout of
an activation matters (residual stream, q/k/v, FFN hidden, scan carry). Outside an
`activation_sharding(mesh, rules)` block this is the identity, so the model builds and runs
without a mesh. Inside, the logical names map to mesh axes through `parallel/rules.py` and
the array gets `jax.lax.with_sharding_constraint`: activations are split over the batch
axes (data, fsdp) and the tensor axis, never over the weights' embed axis, which makes XLA
gather the FSDP-sharded weights instead of the activations.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding

from samaudio_jax.parallel import rules as rules_lib

_ACTIVE: contextvars.ContextVar[tuple[Mesh, tuple] | None] = contextvars.ContextVar(
    "samaudio_activation_sharding", default=None
)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh | None, rules: rules_lib.Rules):
    """Within this block (while tracing), `constrain` pins activations to `mesh` via `rules`."""
    if mesh is None:
        yield
        return
    rules_lib.rules_dict(rules)  # validates the rule list up front
    token = _ACTIVE.set((mesh, tuple(rules)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
    """x with a sharding constraint from its logical axis names; identity without a context."""
    active = _ACTIVE.get()
    if active is None:
        return x
    if len(logical) != x.ndim:
        raise ValueError(f"constrain: logical axes {tuple(logical)} do not match shape {x.shape}")
    mesh, rules = active
    spec = rules_lib.logical_to_mesh_spec(tuple(logical), rules, mesh, x.shape)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
