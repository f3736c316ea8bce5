"""A file that grows by appends, local or behind a URL (metrics.jsonl, TensorBoard events).

Object stores (gs://, s3://) cannot append to an object: there the file's whole content is
kept in memory and uploaded again as one object at each flush, so readers always see a whole
file (the content at some flush). Flushes of a URL happen at most every `flush_secs` seconds
(and on close), since each rewrites everything; a killed process loses at most that much.
Locally, each flush appends the new bytes to the file.
"""

from __future__ import annotations

import os
import time

from samaudio_jax.paths import as_path, is_url


class AppendFile:
    """Appends bytes to `path`; `keep_existing` continues a file that is already there."""

    def __init__(self, path, *, flush_secs: float = 30.0, keep_existing: bool = True):
        self.path = as_path(path)
        self.url = is_url(os.fspath(self.path))
        self.flush_secs = flush_secs
        self._pending = bytearray()
        self._content = bytearray()  # URL only: everything, re-uploaded at each flush
        if self.url and keep_existing and self.path.exists():
            self._content += self.path.read_bytes()
        elif not self.url:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not keep_existing:
                self.path.write_bytes(b"")
        self._last_flush = time.monotonic()

    def write(self, data: bytes) -> None:
        self._pending += data
        if not self.url or time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if self.url:
            self._content += self._pending
            self.path.write_bytes(bytes(self._content))  # one upload: visible only when whole
        else:
            with self.path.open("ab") as f:
                f.write(bytes(self._pending))
        self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
