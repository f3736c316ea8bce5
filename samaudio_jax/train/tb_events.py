"""TensorBoard scalars written to an events file in a local folder or behind a URL.

tensorboardX's SummaryWriter opens files by name and writes gs:// through its own
google-cloud-storage client (s3:// through boto), bypassing our one path type, and a logdir
URL it does not know becomes a local folder. This writer keeps the TensorBoard file format
(length-prefixed records with masked CRC32C, tensorboardX's own protos and scalar summaries)
and puts the bytes through `io_append.AppendFile`, so a URL logdir is written where it says.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.summary import scalar

from samaudio_jax.io_append import AppendFile
from samaudio_jax.paths import as_path


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventsWriter:
    """One events file per writer, named as TensorBoard expects, in `logdir`."""

    def __init__(self, logdir, *, flush_secs: float = 30.0):
        now = time.time()
        # TensorBoard reads any file whose name holds "tfevents"; the random part keeps two
        # writers started in the same second (a quick resume) from overwriting each other.
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"
        self.path = as_path(logdir) / name
        self._file = AppendFile(self.path, flush_secs=flush_secs, keep_existing=False)
        self._write(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._file.write(_record(event.SerializeToString()))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._write(
            event_pb2.Event(wall_time=time.time(), step=int(step), summary=scalar(tag, value))
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
