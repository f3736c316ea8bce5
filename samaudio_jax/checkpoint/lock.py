"""One writer per workdir: `train` holds WORKDIR/train.lock (JSON: host, pid, start time,
token) while it runs and removes it at exit.

A second trainer on a locked workdir refuses with WorkdirLockedError naming the holder. A
lock left by a dead process on this host (its pid is not alive) is stale: it is named in a
warning and taken over. A lock from another host cannot be checked from here; the error says
so and how to proceed (`--force_unlock`, once that host's trainer is known to be gone).

Taking the lock: on a local disk the file is created with O_EXCL, so two trainers racing
for it cannot both win. An object store (gs://, s3://) has no exclusive create through
fsspec; there the lock is written with a unique token and read back after a short pause,
and whoever reads back its own token holds it. Two trainers starting within that pause
can still both believe they won; it catches the common mistake (a second run started on
a busy workdir), not a deliberate race.

Readers (export, eval, separate) never take or check the lock: they only read complete
checkpoints (see orbax_io's read-only manager).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
import uuid

from samaudio_jax import paths

LOCK_NAME = "train.lock"
_READ_BACK_PAUSE_S = 1.0  # object stores: time for a racing writer's lock to land


class WorkdirLockedError(RuntimeError):
    """Another trainer holds the workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _describe(holder: dict) -> str:
    return (
        f"host {holder.get('host')!r}, pid {holder.get('pid')}, started {holder.get('start_time')}"
    )


class WorkdirLock:
    """The workdir's train lock. `acquire` takes it (or raises); `release` removes it if
    it is still ours. Use as a context manager."""

    def __init__(self, workdir, *, force: bool = False, warn=print):
        self.path = paths.as_path(workdir) / LOCK_NAME
        self.force = force
        self.warn = warn
        self.token = uuid.uuid4().hex
        self.held = False
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start_time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "token": self.token,
        }

    def _read(self) -> dict | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
        except json.JSONDecodeError:
            return {"host": "?", "pid": "?", "start_time": "?", "unreadable": text[:80]}
        return holder if isinstance(holder, dict) else {"host": "?", "pid": "?"}

    def _check_holder(self, holder: dict) -> None:
        """Returns when `holder` may be replaced (stale or forced); raises otherwise."""
        who = _describe(holder)
        if self.force:
            self.warn(f"warning: {self.path}: removing the lock of {who} (--force_unlock)")
            return
        same_host = holder.get("host") == self.record["host"]
        pid = holder.get("pid")
        if same_host and isinstance(pid, int) and not _pid_alive(pid):
            self.warn(
                f"warning: {self.path}: stale lock of {who} (no such process on this host); "
                "taking it over"
            )
            return
        if same_host:
            raise WorkdirLockedError(
                f"workdir {self.path.parent} is in use by another trainer ({who}); stop it "
                "or use another --workdir"
            )
        raise WorkdirLockedError(
            f"workdir {self.path.parent} is locked by another trainer ({who}); this host "
            f"cannot tell whether it still runs. If it is gone, rerun with --force_unlock "
            f"(or delete {self.path})"
        )

    def _create_local(self, text: str) -> bool:
        try:
            fd = os.open(os.fspath(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True

    def acquire(self) -> WorkdirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.record)
        local = not paths.is_url(self.path)
        for _ in range(3):  # a stale lock removed by another starter: try again
            holder = self._read()
            if holder is not None:
                self._check_holder(holder)
                self.path.unlink(missing_ok=True)
            if local:
                if self._create_local(text):
                    self.held = True
                    return self
                continue
            self.path.write_text(text)
            time.sleep(_READ_BACK_PAUSE_S)
            back = self._read()
            if back is not None and back.get("token") == self.token:
                self.held = True
                return self
        holder = self._read() or {}
        raise WorkdirLockedError(
            f"workdir {self.path.parent}: could not take {LOCK_NAME}; another trainer "
            f"({_describe(holder)}) took it at the same time"
        )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = self._read()
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
