"""Multi-process start-up: jax.distributed.initialize from flags or from the environment.

On a Cloud TPU pod (and under SLURM or Kubernetes set-ups JAX recognises) every worker
calls `initialize()` with no arguments and JAX reads the coordinator from the environment.
Elsewhere pass the coordinator address, the process count and this process's id.
"""

from __future__ import annotations

import os

import jax

_TPU_ENV = ("TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS", "TPU_WORKER_ID")


def running_on_tpu_pod() -> bool:
    """True when the TPU runtime's pod environment variables name more than one worker."""
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h.strip()]) > 1


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Starts jax.distributed when needed; returns True when it did.

    Given flags: all three must be set. No flags: initialise from the environment on a TPU
    pod (or when SAMAUDIO_DISTRIBUTED=1), otherwise run single-process.
    """
    flags = (coordinator_address, num_processes, process_id)
    if any(f is not None for f in flags):
        if any(f is None for f in flags):
            raise ValueError(
                "--coordinator_address, --num_processes and --process_id must be given "
                f"together; got {coordinator_address!r}, {num_processes!r}, {process_id!r}"
            )
        if not 0 <= process_id < num_processes:
            raise ValueError(
                f"--process_id: expected 0 <= id < --num_processes ({num_processes}), "
                f"got {process_id}"
            )
        if num_processes == 1:
            return False
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
        return True
    if running_on_tpu_pod() or os.environ.get("SAMAUDIO_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False
