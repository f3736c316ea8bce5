"""Reading a file that may live behind a URL, for decoders that take a file name or a file
object (soundfile, numpy, PyAV): a local path is handed over as it is, a URL's bytes are
read into memory (nothing is written to local disk).
"""

from __future__ import annotations

import io
import os

from samaudio_jax.paths import as_path, is_url


def readable_file(path: str | os.PathLike) -> str | io.BytesIO:
    """`path` when local, else an in-memory copy of the URL's object. Raises
    FileNotFoundError when there is nothing there, IsADirectoryError for a folder, and
    EOFError for an empty file, each naming `path` (callers re-raise their own kind)."""
    text = os.fspath(path)
    if is_url(text):
        url = as_path(text)
        if not url.exists():
            raise FileNotFoundError(f"{text}: no such file")
        if url.is_dir():
            raise IsADirectoryError(f"{text}: is a directory, not a file")
        data = url.read_bytes()
        if not data:
            raise EOFError(f"{text}: zero-length file")
        return io.BytesIO(data)
    if not os.path.exists(text):
        raise FileNotFoundError(f"{text}: no such file")
    if os.path.isdir(text):
        raise IsADirectoryError(f"{text}: is a directory, not a file")
    if os.path.getsize(text) == 0:
        raise EOFError(f"{text}: zero-length file")
    return text
