"""Preemption agreed across processes: `Preemption.reached(step)` is True at the same step
on every process once any got SIGTERM (JAX's preemption service where it runs, else an
all-gather of each process's SIGTERM flag every PREEMPTION_POLL_STEPS steps), so every
process saves the same step before it stops.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np

PREEMPTION_POLL_STEPS = 1  # fallback all-gather period (steps) when JAX's service is off


class StopFlag:
    """Set by SIGTERM; checked at step boundaries."""

    def __init__(self):
        self.set = False
        self._previous = None

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.set = True

    def uninstall(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def preemption_service_running() -> bool:
    try:
        from jax._src import distributed as jax_distributed
    except ImportError:  # pragma: no cover - a JAX without the module: use the fallback
        return False
    state = jax_distributed.global_state
    return state.client is not None and state.preemption_sync_manager is not None


class Preemption:
    """`reached(step)`: True at the same step on every process once any got SIGTERM."""

    def __init__(self):
        self.multi = jax.process_count() > 1
        self.service = self.multi and preemption_service_running()
        self.flag = StopFlag()
        if not self.service:
            self.flag.install()

    def start(self, step: int) -> None:
        """Registers the starting step with the service before the (long) first compile, so
        a notice that arrives during it can be agreed on (the service needs every process's
        step counter)."""
        if self.service:
            from jax.experimental import multihost_utils

            multihost_utils.reached_preemption_sync_point(step)

    def reached(self, step: int) -> bool:
        if self.service:
            from jax.experimental import multihost_utils

            return bool(multihost_utils.reached_preemption_sync_point(step))
        if not self.multi:
            return self.flag.set
        if step % PREEMPTION_POLL_STEPS:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(self.flag.set, np.int32))
        return bool(np.any(flags))

    def close(self):
        self.flag.uninstall()
