"""The device mesh: axes (data, fsdp, tensor) sized by config.mesh, -1 filling the rest.

Within a slice the sizes are `mesh.data`, `mesh.fsdp`, `mesh.tensor`; across slices
(multi-slice, DCN) `mesh.dcn_data`, `mesh.dcn_fsdp`, `mesh.dcn_tensor` multiply them, and the
device array comes from `mesh_utils.create_hybrid_device_mesh` so that only the DCN axes
cross slice boundaries. Axis types are Auto: shardings propagate through the step without
explicit out_sharding annotations on every contraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "tensor")


def resolve_axis_sizes(sizes: Sequence[int], num_devices: int, where: str) -> tuple[int, ...]:
    """Replaces one -1 in `sizes` so that their product is `num_devices`; checks the result."""
    sizes = [int(s) for s in sizes]
    fill = [i for i, s in enumerate(sizes) if s == -1]
    if len(fill) > 1:
        raise ValueError(f"{where}: at most one axis may be -1 (fill), got {tuple(sizes)}")
    for name, s in zip(MESH_AXES, sizes):
        if s == 0 or s < -1:
            raise ValueError(f"{where}.{name}: expected a positive size or -1, got {s}")
    known = math.prod(s for s in sizes if s != -1)
    if fill:
        if num_devices % known:
            raise ValueError(
                f"{where}: {num_devices} devices do not divide by the fixed axes "
                f"{dict(zip(MESH_AXES, sizes))} (product {known})"
            )
        sizes[fill[0]] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"{where}: axis sizes {dict(zip(MESH_AXES, sizes))} multiply to "
            f"{math.prod(sizes)}, but there are {num_devices} devices"
        )
    return tuple(sizes)


def mesh_shapes(mesh_cfg, num_devices: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ici_shape, dcn_shape) for `num_devices` devices in total."""
    dcn = (mesh_cfg.dcn_data, mesh_cfg.dcn_fsdp, mesh_cfg.dcn_tensor)
    for name, d in zip(MESH_AXES, dcn):
        if int(d) < 1:
            raise ValueError(f"config.mesh.dcn_{name}: expected a positive size, got {d}")
    dcn = tuple(int(d) for d in dcn)
    slices = math.prod(dcn)
    if num_devices % slices:
        raise ValueError(
            f"config.mesh.dcn_*: {num_devices} devices do not split into {slices} slices"
        )
    ici = resolve_axis_sizes(
        (mesh_cfg.data, mesh_cfg.fsdp, mesh_cfg.tensor), num_devices // slices, "config.mesh"
    )
    return ici, dcn


def make_mesh(mesh_cfg, devices: Sequence | None = None) -> Mesh:
    """A Mesh over `devices` (default: all) with axes (data, fsdp, tensor), Auto axis types."""
    devices = list(jax.devices() if devices is None else devices)
    ici, dcn = mesh_shapes(mesh_cfg, len(devices))
    if math.prod(dcn) > 1:
        array = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
    elif devices[0].platform == "cpu" or len(devices) == 1:
        array = np.asarray(devices, dtype=object).reshape(ici)
    else:
        array = mesh_utils.create_device_mesh(ici, devices, allow_split_physical_axes=True)
    return Mesh(array, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def batch_axis_size(mesh: Mesh) -> int:
    """How many ways the batch dimension splits: data x fsdp."""
    return mesh.shape["data"] * mesh.shape["fsdp"]
