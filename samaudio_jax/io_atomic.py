"""Atomic file writes, local or behind a URL: the destination is either absent/old or whole.

Local: the bytes go to a temporary name in the destination's folder, which is then renamed
over the destination (atomic on one filesystem); an interrupted or failed write leaves neither
a half-written destination nor the temporary file. The file gets the permissions a plain open()
would give it (0666 less the umask), not mkstemp's 0600.

URL (gs://, s3://): an object store makes an upload visible only once it is complete, so the
atomic write is one upload of the whole content, built in memory first; nothing touches local
disk, and a writer that fails before the upload leaves the destination as it was.

Writers that want a file take a binary file object (`atomic_write_stream`): soundfile,
matplotlib, np.save, torch.save all accept one. `atomic_write` (a writer given a temporary
file NAME) stays for local-only writers; on a URL it refuses, naming the destination.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from samaudio_jax.paths import as_path, is_url


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _local_atomic(path: str, suffix: str, fill: Callable[[str], None]) -> None:
    """fill(tmp) writes a temporary file next to `path`, which is then renamed to `path`."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        fill(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], None], *, suffix: str = ".tmp"
) -> None:
    """Calls `write(tmp)` to fill a temporary file next to LOCAL `path`, then renames it.

    `suffix` ends the temporary name; writers that pick a format from the extension need
    theirs, e.g. ".png". The parent folder must exist. For a writer that can fill a file
    object, use `atomic_write_stream`, which also writes to URLs.
    """
    if is_url(path):
        raise ValueError(
            f"{os.fspath(path)}: this writer needs a local file name and cannot write to a URL "
            "directly; write to a local path and copy it"
        )
    _local_atomic(os.fspath(as_path(path)), suffix, write)


def atomic_write_stream(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Calls `write(f)` with a binary file object; its bytes become `path` atomically.

    Local: `f` is a temporary file next to `path`, renamed over it on success. URL: `f` is an
    in-memory buffer, uploaded to `path` in one piece on success. The parent folder must
    exist (a URL's "folders" always do).
    """
    if is_url(path):
        buffer = io.BytesIO()
        write(buffer)
        as_path(path).write_bytes(buffer.getvalue())
        return

    def fill(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it look complete

    _local_atomic(os.fspath(as_path(path)), ".tmp", fill)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` (local or URL) atomically."""
    atomic_write_stream(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` (local or URL) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
