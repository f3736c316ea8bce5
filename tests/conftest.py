"""Test-session setup that must happen before JAX starts its backends.

Tests run on the CPU even where libtpu (the `tpu` extra, used by the AOT-compile tests) is
installed; subprocesses inherit the same environment.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
# gcsfs reads this at import: without it, each bucket's layout is asked of a gRPC API that the
# test GCS server lacks (a minute's timeout per bucket).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

# A real GCS server (fake-gcs-server) for gs:// tests: fixtures `gcs_server`, `gcs_bucket`.
from tests.storage_server import gcs_bucket, gcs_server  # noqa: E402, F401
