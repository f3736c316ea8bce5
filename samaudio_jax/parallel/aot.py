"""Ahead-of-time compilation for a TPU topology that this host does not have.

With libtpu installed (`pip install "jax[tpu]"`), `topologies.get_topology_desc` describes
the chips of e.g. a v5p:4x4x4 slice; a mesh over those devices lets `jax.jit(...).lower(
abstract args with shardings).compile()` produce the real TPU program on a CPU host, whose
memory_analysis() gives the per-chip memory and cost_analysis() the per-chip FLOPs.
"""

from __future__ import annotations

import dataclasses
import os

# HBM per chip in GiB.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}


def chip_family(topology: str) -> str:
    family = topology.split(":", 1)[0].lower()
    if ":" not in topology or family not in HBM_GIB:
        raise ValueError(
            f"--topology: expected <chip>:<shape> with chip one of {sorted(HBM_GIB)}, "
            f"e.g. v5e:2x2 or v5p:4x4x4; got {topology!r}"
        )
    return family


def topology_devices(topology: str):
    """The devices of a TPU topology, for compilation only (no TPU needed)."""
    chip_family(topology)
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        desc = topologies.get_topology_desc(
            topology_name=topology, platform="tpu", **_single_host_bounds(topology)
        )
    except Exception as e:
        raise RuntimeError(
            f"--topology {topology}: could not describe it ({type(e).__name__}: {e}). "
            'Is libtpu installed (pip install "jax[tpu]==<jax version>")?'
        ) from e
    return list(desc.devices)


def _single_host_bounds(topology: str) -> dict:
    """libtpu's default host is 2x2x1 chips; a slice smaller than one host (v5e:1x1,
    v5p:1x1x1, v5e:2x1) must name its own bounds or libtpu refuses to describe it."""
    try:
        dims = [int(d) for d in topology.split(":", 1)[1].lower().split("x")]
    except ValueError:
        return {}
    dims = (dims + [1, 1, 1])[:3]
    if dims[0] <= 2 and dims[1] <= 2 and dims[2] == 1 and dims[0] * dims[1] < 4:
        return {"chips_per_host_bounds": dims}
    return {}


@dataclasses.dataclass
class MemoryReport:
    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    code: int

    @property
    def total(self) -> int:
        """Peak bytes a chip holds: live arguments and outputs (donated ones once) + temps."""
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code


def memory_report(compiled) -> MemoryReport:
    m = compiled.memory_analysis()
    return MemoryReport(
        arguments=int(m.argument_size_in_bytes),
        outputs=int(m.output_size_in_bytes),
        aliased=int(m.alias_size_in_bytes),
        temporaries=int(m.temp_size_in_bytes),
        code=int(m.generated_code_size_in_bytes),
    )


def gib(n: int) -> float:
    return n / 2**30
