"""Single-chip TPU topologies (v5e:1x1, v5p:1x1x1) can be described for AOT compilation:
libtpu's default host is 2x2x1 chips, so a smaller slice names its own host bounds."""

import importlib.util

import pytest

from samaudio_jax.parallel import aot


@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason='libtpu is not installed (pip install "jax[tpu]==<jax version>" provides it)',
)
@pytest.mark.parametrize(
    "topology, chips, kind",
    [("v5e:1x1", 1, "TPU v5 lite"), ("v5p:1x1x1", 1, "TPU v5"), ("v5p:2x2x1", 4, "TPU v5")],
)
def test_small_topologies_are_described(topology, chips, kind):
    devices = aot.topology_devices(topology)
    assert len(devices) == chips and devices[0].device_kind == kind
