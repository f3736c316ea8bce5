"""Writing shard datasets: ShardWriter (records into bounded ArrayRecord shards, then
index.json last) and write_shards (a manifest's rows -> a dataset, audio decoded and video
features computed). The format, the completeness rule and the URL handling are described in
shards.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterable

import numpy as np

from samaudio_jax.data.manifest import ManifestEntry
from samaudio_jax.data.shards import (
    FORMAT,
    FORMAT_VIDEO,
    INDEX_NAME,
    SHARD_SUFFIX,
    VIDEO_DTYPE,
    ArrayRecordFile,
    ShardError,
    decode_audio,
    encode_record,
    video_to_float16,
)
from samaudio_jax.data.video_features import entry_video_features
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path


@dataclasses.dataclass
class WriteSummary:
    written: int = 0
    skipped: int = 0
    skipped_paths: list[str] = dataclasses.field(default_factory=list)
    shards: int = 0
    first_skip: str = ""  # the first skipped row's message

    def skip(self, message: str, path: str = "") -> None:
        self.skipped += 1
        self.skipped_paths.append(path)
        if not self.first_skip:
            self.first_skip = message

    def __str__(self) -> str:
        text = f"wrote {self.written} examples in {self.shards} shard(s), skipped {self.skipped}"
        return text + (f" (first: {self.first_skip})" if self.skipped else "")


class ShardWriter:
    """Writes records into bounded ArrayRecord shards, then index.json (last, atomically).

    Use as a context manager; `add(meta, audio, video=None)` takes float audio at
    `sample_rate` and optional (T, Dv) video features with T = ceil(len(audio) /
    video_hop_length) (every record of a dataset shares one Dv). Leaving the block by an
    exception writes no index, so the directory stays incomplete.
    """

    def __init__(
        self,
        out_dir: str | Path,
        sample_rate: int,
        max_shard_bytes: int = 256 << 20,
        overwrite: bool = False,
        video_hop_length: int | None = None,
    ):
        self.out_dir = as_path(out_dir)
        self.sample_rate = int(sample_rate)
        self.max_shard_bytes = int(max_shard_bytes)
        self.video_hop_length = None if video_hop_length is None else int(video_hop_length)
        if self.video_hop_length is not None and self.video_hop_length <= 0:
            raise ValueError(f"video_hop_length must be > 0, got {video_hop_length}")
        self.video_dim: int | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        index = self.out_dir / INDEX_NAME
        if index.exists():
            if not overwrite:
                raise ShardError(f"{self.out_dir}: already holds a dataset ({INDEX_NAME})")
            index.unlink()
        leftover = re.compile(
            r"shard-\d{5}"
            + re.escape(SHARD_SUFFIX)
            + r"(\.tmp)?|index\.json\.tmp|\.index\.json\.\w+"
        )
        # A bucket "directory" exists only once an object is in it; listing it before fails.
        existing = self.out_dir.iterdir() if self.out_dir.exists() else ()
        for old in existing:
            if leftover.fullmatch(old.name):
                old.unlink()
        self._records: list[dict] = []
        self._shards: list[dict] = []
        self._writer = None
        self._shard_bytes = 0
        self._shard_count = 0

    def _open_shard(self) -> None:
        name = f"shard-{len(self._shards):05d}{SHARD_SUFFIX}"
        self._writer = ArrayRecordFile(self.out_dir / name)
        self._shards.append({"file": name, "num_records": 0, "bytes": 0})
        self._shard_bytes = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.commit()
            self._writer = None

    def _check_video(self, meta: dict, audio: np.ndarray, video: np.ndarray) -> np.ndarray:
        where = f"{self.out_dir}: record {meta.get('id', '')!r}"
        if self.video_hop_length is None:
            raise ShardError(f"{where}: has video features but the writer has no video_hop_length")
        video = video_to_float16(video, where)
        frames = -(-int(audio.shape[0]) // self.video_hop_length)
        if video.shape[0] != frames:
            raise ValueError(
                f"{where}: video features have {video.shape[0]} frames, expected {frames} = "
                f"ceil({audio.shape[0]} samples / hop {self.video_hop_length})"
            )
        if self.video_dim is not None and video.shape[1] != self.video_dim:
            raise ValueError(
                f"{where}: video features are {video.shape[1]} wide, earlier records "
                f"{self.video_dim}; one dataset has one feature width"
            )
        return video

    def encode(
        self, meta: dict, audio: np.ndarray, video: np.ndarray | None = None
    ) -> tuple[bytes, dict]:
        """Checks and encodes one record without writing anything: (record bytes, index
        entry). An error here concerns this record only; the writer's state is unchanged."""
        if video is not None:
            video = self._check_video(meta, audio, video)
        data = encode_record(meta, audio, video)
        entry = {
            "id": meta.get("id", ""),
            "description": meta.get("description", ""),
            "category": meta.get("category", "unknown"),
            "group": meta.get("group", ""),
            "num_samples": int(audio.shape[0]),
            **({} if video is None else {"video_frames": int(video.shape[0])}),
        }
        if video is not None:  # taken out by write_encoded: the dataset's width, once written
            entry["_video_dim"] = int(video.shape[1])
        return data, entry

    def write_encoded(self, data: bytes, entry: dict) -> None:
        """Writes a record from `encode`."""
        if self._writer is not None and self._shard_bytes + len(data) > self.max_shard_bytes:
            self._close_shard()
        if self._writer is None:
            self._open_shard()
        self._writer.write(data)
        self._shard_bytes += len(data)
        shard = self._shards[-1]
        shard["num_records"] += 1
        shard["bytes"] = self._shard_bytes
        entry = dict(entry)
        video_dim = entry.pop("_video_dim", None)
        if video_dim is not None and self.video_dim is None:
            self.video_dim = video_dim
        self._records.append({**entry, "shard": len(self._shards) - 1})

    def add(self, meta: dict, audio: np.ndarray, video: np.ndarray | None = None) -> None:
        self.write_encoded(*self.encode(meta, audio, video))

    def finish(self, extra: dict | None = None) -> None:
        self._close_shard()
        index = {
            "format": FORMAT if self.video_dim is None else FORMAT_VIDEO,
            "sample_rate": self.sample_rate,
            "dtype": "int16",
            "num_records": len(self._records),
            "shards": self._shards,
            "records": self._records,
            **(extra or {}),
        }
        if self.video_dim is not None:
            for record in self._records:
                record.setdefault("video_frames", 0)
            index["video"] = {
                "dim": self.video_dim,
                "dtype": VIDEO_DTYPE,
                "hop_length": self.video_hop_length,
                "frame_rate": self.sample_rate / self.video_hop_length,
            }
        atomic_write_text(self.out_dir / INDEX_NAME, json.dumps(index))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        elif self._writer is not None:
            self._writer.abort()
        return False


def entry_meta(entry: ManifestEntry) -> dict:
    return {
        "id": entry.id,
        "description": entry.description,
        "category": entry.category,
        "group": entry.group,
        "spans": [list(s) for s in entry.spans],
    }


def write_shards(
    entries: Iterable[ManifestEntry],
    out_dir: str | Path,
    sample_rate: int,
    max_shard_bytes: int = 256 << 20,
    strict: bool = False,
    min_input_rate: int = 0,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    on_record: Callable[[int], None] | None = None,
    video_hop_length: int | None = None,
    video_encoder=None,
    summary: WriteSummary | None = None,
    source: str = "",
) -> WriteSummary:
    """Decodes each entry's file and writes it into a new dataset beside `out_dir`, which
    replaces `out_dir` only once complete (data.staging). `on_record(n)` runs after each write.

    Not `strict`: a row that fails (unreadable audio, bad video or features, a record the
    writer rejects) is logged, skipped and counted in the summary (pass `summary` to continue
    counts begun elsewhere, e.g. bad manifest rows). `strict`: the first failure raises.
    No record written at all raises ShardError naming `source` and the first failure;
    `out_dir` is then left as it was.

    Entries with video_features (.npy) or video (run through `video_encoder`, a
    vision.features.FrameEncoder, at one frame per `video_hop_length` samples) also store
    (T, Dv) features."""
    from samaudio_jax.data.staging import staged_dataset

    summary = summary if summary is not None else WriteSummary()
    with staged_dataset(out_dir, overwrite, log) as new_dir:
        with ShardWriter(new_dir, sample_rate, max_shard_bytes, False, video_hop_length) as writer:
            for entry in entries:
                try:
                    audio = decode_audio(entry.path, sample_rate, entry.sample_rate, min_input_rate)
                    video = None
                    if entry.has_video:
                        if video_hop_length is None:
                            raise ShardError(
                                f"{entry.where or entry.id}: has video but no video_hop_length"
                            )
                        video = entry_video_features(
                            entry, len(audio), video_hop_length, sample_rate, video_encoder
                        )
                    record = writer.encode(entry_meta(entry), audio, video)
                except Exception as e:  # non-strict: any failure of this row is a skip
                    if strict:
                        raise
                    message = str(e)
                    if entry.path not in message and not (entry.where and entry.where in message):
                        message = f"{entry.where or entry.path}: {message}"
                    log(f"skipped {message}")
                    summary.skip(message, entry.path)
                    continue
                # Outside the try: a failure to store a good record is not the row's fault.
                writer.write_encoded(*record)
                summary.written += 1
                if on_record is not None:
                    on_record(summary.written)
            if summary.written == 0:
                where = source or os.fspath(out_dir)
                first = f" (first: {summary.first_skip})" if summary.first_skip else ""
                raise ShardError(
                    f"{where}: no record could be written, {summary.skipped} skipped{first}; "
                    f"{os.fspath(out_dir)} was left as it was"
                )
        summary.shards = len(writer._shards)
    return summary
