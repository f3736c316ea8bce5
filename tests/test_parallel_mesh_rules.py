"""Mesh sizing from config.mesh and the logical-axis -> mesh-axis rules."""

import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from samaudio_jax.config_schema import default_config
from samaudio_jax.parallel import rules
from samaudio_jax.parallel.mesh import mesh_shapes, resolve_axis_sizes


def _mesh_cfg(**kw):
    m = ml_collections.ConfigDict(default_config().mesh.to_dict())
    for k, v in kw.items():
        m[k] = v
    return m


def test_minus_one_fills_the_remaining_devices():
    assert resolve_axis_sizes((-1, 2, 2), 16, "m") == (4, 2, 2)
    assert mesh_shapes(_mesh_cfg(data=1, fsdp=-1, tensor=2), 8) == ((1, 4, 2), (1, 1, 1))
    assert mesh_shapes(_mesh_cfg(data=-1, dcn_data=2), 16) == ((8, 1, 1), (2, 1, 1))


@pytest.mark.parametrize(
    "sizes, match",
    [((-1, -1, 1), "at most one"), ((3, 1, 1), "multiply to 3"), ((-1, 3, 1), "do not divide")],
)
def test_bad_mesh_sizes_are_refused_naming_the_config_field(sizes, match):
    with pytest.raises(ValueError, match=match):
        resolve_axis_sizes(sizes, 8, "config.mesh")


class _FakeMesh:
    def __init__(self, **shape):
        self.shape = shape


def test_logical_names_map_through_rules_and_indivisible_dims_stay_replicated():
    mesh = _FakeMesh(data=2, fsdp=4, tensor=2)
    r = default_config().mesh.rules
    assert rules.logical_to_mesh_spec(("embed", "mlp"), r, mesh, (64, 256)) == P("fsdp", "tensor")
    assert rules.logical_to_mesh_spec(("embed", "mlp"), r, mesh, (6, 256)) == P(None, "tensor")
    assert rules.logical_to_mesh_spec(("norm",), r, mesh, (64,)) == P()
    assert rules.logical_to_mesh_spec(("batch", None), r, mesh, (8, 3)) == P(("data", "fsdp"))
    # A mesh axis is never used twice in one spec.
    twice = (("a", "fsdp"), ("b", "fsdp"))
    assert rules.logical_to_mesh_spec(("a", "b"), twice, mesh, (8, 8)) == P("fsdp")
    with pytest.raises(ValueError, match="no entry in config.mesh.rules"):
        rules.logical_to_mesh_spec(("nonsense",), r, mesh, (8,))


def test_axes_of_size_one_are_dropped_from_specs():
    mesh = _FakeMesh(data=8, fsdp=1, tensor=1)
    r = default_config().mesh.rules
    assert rules.logical_to_mesh_spec(("embed", "mlp"), r, mesh, (64, 64)) == P()
    assert rules.logical_to_mesh_spec(("batch",), r, mesh, (16,)) == P("data")
    assert np.prod(list(mesh.shape.values())) == 8
