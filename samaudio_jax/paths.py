"""One path type for every file the project reads or writes: local folders and URLs alike.

A path is an `etils.epath.Path`. Local paths behave as pathlib's; `gs://` and `s3://` URLs go
through fsspec (gcsfs, s3fs), so a workdir or dataset in a bucket stays in the bucket. Orbax
takes these paths as they are. Nothing here, or anywhere that uses it, turns a URL into a
local path (pathlib would make `gs://b/run` the local folder `./gs:/b/run`).

`as_path` is the one door: it keeps URLs as URLs, makes local paths absolute, and names the
package to install when a URL's backend is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re

from etils import epath

Path = epath.Path
PathLike = str | os.PathLike

# scheme -> (importable module, pip package) that fsspec needs for it.
_BACKENDS = {"gs": ("gcsfs", "gcsfs"), "s3": ("s3fs", "s3fs")}
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
