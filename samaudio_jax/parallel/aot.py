"""Ahead-of-time compilation for a TPU topology that this host does not have.

With libtpu installed (`pip install "jax[tpu]"`), `topologies.get_topology_desc` describes
the chips of e.g. a v5p:4x4x4 slice; a mesh over those devices lets `jax.jit(...).lower(
abstract args with shardings).compile()` produce the real TPU program on a CPU host, whose
memory_analysis() gives the per-chip memory and cost_analysis() the per-chip FLOPs and bytes
(with loops counted trip-count times by hlo_cost: XLA counts a loop's body once).
"""

from __future__ import annotations

import dataclasses
import os

from samaudio_jax.parallel import hlo_cost

# HBM per chip in GiB.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
# Published peak dense bf16 FLOP/s and HBM bandwidth (bytes/s) per chip (Google Cloud TPU
# system-architecture pages): v4 275 TFLOP/s, 1228 GB/s; v5e 197 TFLOP/s, 819 GB/s;
# v5p 459 TFLOP/s, 2765 GB/s; v6e 918 TFLOP/s, 1640 GB/s.
PEAK_BF16_FLOPS = {"v4": 275e12, "v5e": 197e12, "v5p": 459e12, "v6e": 918e12}
HBM_BYTES_PER_S = {"v4": 1228e9, "v5e": 819e9, "v5p": 2765e9, "v6e": 1640e9}


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


@dataclasses.dataclass
class Roofline:
    """A PREDICTION from XLA's cost analysis, not a measurement: the step takes at least
    its FLOPs at the chip's peak and at least its bytes at the HBM bandwidth; the larger is
    the predicted step time. Collectives (ICI/DCN), overlap gaps and imperfect MXU use are
    not modelled, so real steps are slower and real MFU lower."""

    flops: float  # per chip per step
    bytes_accessed: float  # per chip per step
    peak_flops: float
    hbm_bytes_per_s: float

    @property
    def compute_s(self) -> float:
        return self.flops / self.peak_flops

    @property
    def memory_s(self) -> float:
        return self.bytes_accessed / self.hbm_bytes_per_s

    @property
    def step_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "HBM bandwidth"

    def mfu(self, useful_flops: float | None = None) -> float:
        """Predicted MFU: `useful_flops` (default: all of the program's) over peak x time."""
        return (self.flops if useful_flops is None else useful_flops) / (
            self.peak_flops * self.step_s
        )


def cost(compiled) -> tuple[float | None, float | None]:
    """(FLOPs, bytes accessed) per chip of one call, every loop iteration counted
    (`loop_cost`); (None, None) where the backend has no cost analysis."""
    c = loop_cost(compiled)
    return (None, None) if c is None else (c.flops, c.bytes_accessed)


def xla_cost(compiled) -> tuple[float | None, float | None]:
    """XLA's own (FLOPs, bytes accessed) per chip: a while loop's body counted ONCE."""
    try:
        c = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None, None
    if isinstance(c, (list, tuple)):
        c = c[0] if c else None
    if not c:
        return None, None
    flops, nbytes = c.get("flops"), c.get("bytes accessed")
    return (None if flops is None else float(flops)), (None if nbytes is None else float(nbytes))


def loop_cost(compiled) -> hlo_cost.LoopCost | None:
    """XLA's cost analysis with each while loop (the scanned layer stack and its backward,
    gradient accumulation, scans in a codec) counted trip-count times; see hlo_cost."""
    flops, nbytes = xla_cost(compiled)
    if flops is None:
        return None
    return hlo_cost.loop_aware_cost(compiled.as_text(), flops, nbytes or 0.0)


def roofline(family: str, flops: float, bytes_accessed: float) -> Roofline:
    return Roofline(flops, bytes_accessed, PEAK_BF16_FLOPS[family], HBM_BYTES_PER_S[family])
