"""One path type for every file the project reads or writes: local folders and URLs alike.

A path is an `etils.epath.Path`. Local paths behave as pathlib's; `gs://` and `s3://` URLs go
through fsspec (gcsfs, s3fs), so a workdir or dataset in a bucket stays in the bucket. Orbax
takes these paths as they are. Nothing here, or anywhere that uses it, turns a URL into a
local path (pathlib would make `gs://b/run` the local folder `./gs:/b/run`).

`as_path` is the one door: it keeps URLs as URLs, makes local paths absolute, and names the
package to install when a URL's backend is missing. `check_reachable` asks a URL's bucket once
(per process) whether it can be listed, so an unreachable server or a missing bucket is named
up front instead of looking like an empty folder (fsspec's exists/is_dir answer False on any
error, which would make a preempted run start again from step 0).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re

from etils import epath

Path = epath.Path
PathLike = str | os.PathLike

# scheme -> (importable module, pip package) that fsspec needs for it.
_BACKENDS = {"gs": ("gcsfs", "gcsfs"), "s3": ("s3fs", "s3fs")}
# What to check when a bucket cannot be reached, per scheme.
_HINTS = {
    "gs": "credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)",
    "s3": "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile; AWS_ENDPOINT_URL)",
}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class StorageBackendError(RuntimeError):
    """A URL whose storage backend is not installed or cannot be reached."""


def url_scheme(path: PathLike) -> str | None:
    """'gs' for 'gs://b/x', None for a local path."""
    m = _URL.match(os.fspath(path))
    return m.group(1).lower() if m else None


def is_url(path: PathLike) -> bool:
    scheme = url_scheme(path)
    return scheme is not None and scheme != "file"


def as_path(path: PathLike) -> epath.Path:
    """The epath for `path`: URLs kept as they are, local paths made absolute.

    Raises StorageBackendError naming the URL and the package to install when the URL's
    fsspec backend is not importable.
    """
    text = os.fspath(path)
    scheme = url_scheme(text)
    if scheme == "file":
        text = text[len("file://") :]
        scheme = None
    if scheme is None:
        return epath.Path(os.path.abspath(os.path.expanduser(text)))
    module, package = _BACKENDS.get(scheme, (None, None))
    if module is not None and importlib.util.find_spec(module) is None:
        raise StorageBackendError(
            f"{text}: reading or writing {scheme}:// paths needs the '{package}' package; "
            f"pip install {package}"
        )
    return epath.Path(text)


def _bucket(text: str) -> tuple[str, str]:
    scheme = url_scheme(text)
    return scheme, text.split("://", 1)[1].split("/", 1)[0]


def check_reachable(path: PathLike) -> None:
    """For a URL: raises StorageBackendError (one line, naming the URL) when its backend is
    missing, its server cannot be reached, or its bucket does not exist. Local paths pass."""
    text = os.fspath(path)
    if not is_url(text):
        return
    as_path(text)  # names the package to install when the backend is missing
    scheme, bucket = _bucket(text)
    problem = _bucket_problem(scheme, bucket)
    if problem is not None:
        raise StorageBackendError(f"{text}: {problem}")


@functools.cache
def _bucket_problem(scheme: str, bucket: str) -> str | None:
    """Why scheme://bucket cannot be listed, or None; asked once per process."""
    import logging

    import fsspec

    # gcsfs logs the traceback of a request out of retries; the error below says it in a line
    quiet = logging.getLogger(_BACKENDS.get(scheme, (scheme,))[0])
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        fsspec.filesystem(scheme).ls(bucket, detail=False)
    except FileNotFoundError:
        return f"bucket {scheme}://{bucket} does not exist (or these credentials cannot see it)"
    except Exception as err:  # the backends raise their own types (aiohttp, botocore, HTTP)
        detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        return (
            f"cannot reach {scheme}://{bucket} ({detail}); check the network and "
            f"{_HINTS.get(scheme, 'credentials')}"
        )
    finally:
        quiet.setLevel(level)
    return None
