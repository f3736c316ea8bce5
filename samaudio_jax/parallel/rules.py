"""Logical axis names -> mesh PartitionSpecs, driven by config.mesh.rules.

Every parameter of the model carries logical names (embed, mlp, heads, ...) in its
`out_sharding` metadata. `config.mesh.rules` maps each name to a mesh axis, a tuple of
mesh axes or None (replicated). This module is the one place where that mapping happens.

A dimension whose size the mapped mesh axes do not divide stays replicated, and a mesh axis
already used by an earlier dimension of the same array is not used twice, so that any rule
set yields valid shardings for any model size.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]


def rules_dict(rules: Rules) -> dict[str, tuple[str, ...]]:
    """Normalises the rule list to {logical name: tuple of mesh axes}."""
    out = {}
    for i, rule in enumerate(rules):
        if len(rule) != 2 or not isinstance(rule[0], str):
            raise ValueError(
                f"config.mesh.rules[{i}]: expected (logical_name, mesh_axes), got {rule!r}"
            )
        name, axes = rule
        if axes is None:
            axes = ()
        elif isinstance(axes, str):
            axes = (axes,)
        out[name] = tuple(axes)
    return out


def logical_to_mesh_spec(
    logical: Sequence[str | None] | PartitionSpec | None,
    rules: Rules,
    mesh: Mesh,
    shape: Sequence[int] | None = None,
) -> PartitionSpec:
    """Maps one array's logical axis names to a PartitionSpec over `mesh`'s axes."""
    if logical is None:
        return PartitionSpec()
    table = rules_dict(rules)
    used: set[str] = set()
    spec = []
    for dim, name in enumerate(tuple(logical)):
        if name is None:
            spec.append(None)
            continue
        if isinstance(name, tuple):  # already mesh axes
            axes = name
        elif name in table:
            axes = table[name]
        elif name in mesh.shape:
            axes = (name,)
        else:
            raise ValueError(
                f"logical axis {name!r} has no entry in config.mesh.rules (known: {sorted(table)})"
            )
        axes = tuple(a for a in axes if a not in used and mesh.shape.get(a, 1) > 1)
        for a in axes:
            if a not in mesh.shape:
                raise ValueError(f"config.mesh.rules: {name!r} maps to unknown mesh axis {a!r}")
        size = 1
        for a in axes:
            size *= mesh.shape[a]
        if shape is not None and shape[dim] % size:
            axes = ()
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    while spec and spec[-1] is None:
        spec.pop()
    return PartitionSpec(*spec)


def tree_shardings(abstract_tree, logical_tree, rules: Rules, mesh: Mesh):
    """NamedShardings for a pytree of arrays given a matching tree of logical specs."""

    def one(leaf, logical):
        return NamedSharding(mesh, logical_to_mesh_spec(logical, rules, mesh, leaf.shape))

    return jax.tree.map(
        one, abstract_tree, logical_tree, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def logical_specs(state: nnx.State):
    """Pure-dict tree of the logical PartitionSpecs recorded on an nnx State's variables."""
    return nnx.to_pure_dict(nnx.get_partition_spec(state))


def state_shardings(state: nnx.State, rules: Rules, mesh: Mesh):
    """Pure-dict tree of NamedShardings for an (abstract) nnx State."""
    shapes = nnx.to_pure_dict(state)
    return tree_shardings(shapes, logical_specs(state), rules, mesh)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int) -> NamedSharding:
    """Leading (batch) dimension over the 'batch' rule's axes, the rest replicated."""
    axes = rules_dict(rules).get("batch", ("data", "fsdp"))
    axes = tuple(a for a in axes if a in mesh.shape)
    lead = None if not axes else axes[0] if len(axes) == 1 else axes
    return NamedSharding(mesh, PartitionSpec(lead, *([None] * (ndim - 1))))
