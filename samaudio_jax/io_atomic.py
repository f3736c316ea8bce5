"""Atomic file writes: write under a temporary name in the destination's folder, then rename.

An interrupted or failed write never leaves a half-written file at the destination (the
rename is atomic on one filesystem) and never leaves the temporary file behind. The file
gets the permissions a plain open() would give it (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], None], *, suffix: str = ".tmp"
) -> None:
    """Calls `write(tmp)` to fill a temporary file next to `path`, then renames it to `path`.

    `suffix` ends the temporary name; writers that pick a format from the extension
    (soundfile, matplotlib, np.save) need theirs, e.g. ".png". The parent folder must exist.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(text, encoding="utf-8"))
