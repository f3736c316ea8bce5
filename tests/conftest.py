"""Test-session setup that must happen before JAX starts its backends.

Tests run on the CPU even where libtpu (the `tpu` extra, used by the AOT-compile tests) is
installed; subprocesses inherit the same environment.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
