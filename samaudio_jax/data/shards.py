"""ArrayRecord shards of mono audio (and optional video features): decoding, the shard
writer, and the shard reader.

Storage: int16 PCM (full scale 32767), so a stored sample is within 0.5 / 32767 of the
clipped float input. A record is `<u32 header length> <JSON header> <int16 samples>
[<float16 video features>]`; the header holds id, description, category, group, spans
(list of [start_s, end_s]), sample_rate and num_samples, and, when the record carries
visual-prompt features, "video": {"shape": [T, Dv], "dtype": "float16"}: T per-latent-frame
features of width Dv stored row-major as little-endian float16 right after the PCM (features
are unit-norm PE-Core embeddings: float16 keeps them to ~5e-4 relative). T = ceil(num_samples
/ hop), hop = the codec's hop in samples at the data sample rate (1920 at 48 kHz: 25 fps).

Formats: "samaudio-shards-v1" (audio only, every record `<header> <PCM>`) is what an
audio-only dataset is still written as; "samaudio-shards-v2" marks a dataset whose records
may carry features; its index.json adds "video": {"dim", "dtype", "hop_length", "frame_rate"}
and each record entry "video_frames" (0 = no video). The reader reads both.

A directory is complete only when it holds index.json, written last by atomic rename; each
shard is written as `<name>.tmp` and renamed when closed. The reader refuses a directory
without index.json and ignores files the index does not list.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from samaudio_jax.data.manifest import ManifestEntry

INDEX_NAME = "index.json"
FORMAT = "samaudio-shards-v1"  # audio only
FORMAT_VIDEO = "samaudio-shards-v2"  # records may carry video features after the PCM
FORMATS = (FORMAT, FORMAT_VIDEO)
VIDEO_DTYPE = "float16"
PCM_SCALE = 32767.0
SHARD_SUFFIX = ".array_record"


class AudioDecodeError(ValueError):
    """An audio file could not be used; the message names the file."""


class ShardError(ValueError):
    """A shard directory is incomplete or inconsistent; the message names the directory."""


def decode_audio(
    path: str,
    sample_rate: int,
    declared_rate: int | None = None,
    min_input_rate: int = 0,
) -> np.ndarray:
    """Decodes `path` (wav/flac/ogg/mp3 via soundfile) to mono float32 at `sample_rate`."""
    import soundfile as sf
    import soxr

    if not os.path.exists(path):
        raise AudioDecodeError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioDecodeError(f"{path}: is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(f"{path}: zero-length file")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioDecodeError(f"{path}: cannot decode as audio ({e})") from e
    if declared_rate is not None and declared_rate != rate:
        raise AudioDecodeError(
            f"{path}: manifest declares sample_rate {declared_rate} but the file is {rate} Hz"
        )
    if rate < min_input_rate:
        raise AudioDecodeError(
            f"{path}: sample rate {rate} Hz is below data.min_input_rate {min_input_rate} Hz"
        )
    if audio.shape[0] == 0:
        raise AudioDecodeError(f"{path}: the file holds no samples")
    mono = audio.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(f"{path}: the audio holds NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def video_to_float16(video: np.ndarray, where: str) -> np.ndarray:
    """(T, Dv) features as little-endian float16; ValueError naming `where` if they are not
    2-D or do not fit float16 (non-finite, or beyond +-65504)."""
    video = np.asarray(video)
    if video.ndim != 2 or video.shape[1] == 0:
        raise ValueError(f"{where}: video features must be (T, Dv), got shape {video.shape}")
    if not np.all(np.isfinite(video)) or np.max(np.abs(video), initial=0.0) > 65504.0:
        raise ValueError(f"{where}: video features hold NaN, infinite or >65504 values")
    return np.ascontiguousarray(video, dtype="<f2")


def encode_record(meta: dict, audio: np.ndarray, video: np.ndarray | None = None) -> bytes:
    pcm = np.round(np.clip(audio, -1.0, 1.0) * PCM_SCALE).astype("<i2")
    header = {**meta, "num_samples": int(pcm.shape[0])}
    payload = pcm.tobytes()
    if video is not None:
        video = video_to_float16(video, f"record {meta.get('id', '')!r}")
        header["video"] = {"shape": list(video.shape), "dtype": VIDEO_DTYPE}
        payload += video.tobytes()
    text = json.dumps(header).encode("utf-8")
    return struct.pack("<I", len(text)) + text + payload


def decode_record(data: bytes) -> dict:
    """The record's header fields plus "audio": float32 samples in [-1, 1], and, when the
    record carries features, "video": (T, Dv) float16."""
    (length,) = struct.unpack_from("<I", data, 0)
    meta = json.loads(data[4 : 4 + length].decode("utf-8"))
    video = meta.pop("video", None)
    if video is None:  # v1 layout: the PCM runs to the end
        pcm = np.frombuffer(data, dtype="<i2", offset=4 + length)
    else:
        pcm = np.frombuffer(data, dtype="<i2", count=meta["num_samples"], offset=4 + length)
        if video.get("dtype") != VIDEO_DTYPE:
            raise ShardError(f"record {meta.get('id')!r}: video dtype {video.get('dtype')!r}")
        t, dv = video["shape"]
        offset = 4 + length + 2 * meta["num_samples"]
        meta["video"] = np.frombuffer(data, "<f2", count=t * dv, offset=offset).reshape(t, dv)
    meta["audio"] = pcm.astype(np.float32) / PCM_SCALE
    return meta


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclasses.dataclass
class WriteSummary:
    written: int = 0
    skipped: int = 0
    skipped_paths: list[str] = dataclasses.field(default_factory=list)
    shards: int = 0

    def __str__(self) -> str:
        return f"wrote {self.written} examples in {self.shards} shard(s), skipped {self.skipped}"


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
        self.out_dir = Path(out_dir)
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
            r"shard-\d{5}" + re.escape(SHARD_SUFFIX) + r"(\.tmp)?|index\.json\.tmp"
        )
        for old in self.out_dir.iterdir():
            if leftover.fullmatch(old.name):
                old.unlink()
        self._records: list[dict] = []
        self._shards: list[dict] = []
        self._writer = None
        self._shard_bytes = 0
        self._shard_count = 0

    def _open_shard(self) -> None:
        from array_record.python.array_record_module import ArrayRecordWriter

        name = f"shard-{len(self._shards):05d}{SHARD_SUFFIX}"
        self._tmp_path = self.out_dir / (name + ".tmp")
        self._writer = ArrayRecordWriter(str(self._tmp_path), "group_size:1")
        self._shards.append({"file": name, "num_records": 0, "bytes": 0})
        self._shard_bytes = 0

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        os.replace(self._tmp_path, self.out_dir / self._shards[-1]["file"])

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
        if self.video_dim is None:
            self.video_dim = int(video.shape[1])
        elif video.shape[1] != self.video_dim:
            raise ValueError(
                f"{where}: video features are {video.shape[1]} wide, earlier records "
                f"{self.video_dim}; one dataset has one feature width"
            )
        return video

    def add(self, meta: dict, audio: np.ndarray, video: np.ndarray | None = None) -> None:
        if video is not None:
            video = self._check_video(meta, audio, video)
        data = encode_record(meta, audio, video)
        if self._writer is not None and self._shard_bytes + len(data) > self.max_shard_bytes:
            self._close_shard()
        if self._writer is None:
            self._open_shard()
        self._writer.write(data)
        self._shard_bytes += len(data)
        shard = self._shards[-1]
        shard["num_records"] += 1
        shard["bytes"] = self._shard_bytes
        self._records.append(
            {
                "id": meta.get("id", ""),
                "description": meta.get("description", ""),
                "category": meta.get("category", "unknown"),
                "group": meta.get("group", ""),
                "num_samples": int(audio.shape[0]),
                "shard": len(self._shards) - 1,
                **({} if video is None else {"video_frames": int(video.shape[0])}),
            }
        )

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
        _write_json_atomic(self.out_dir / INDEX_NAME, index)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        elif self._writer is not None:
            self._writer.close()
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
) -> WriteSummary:
    """Decodes each entry's file and writes it; undecodable files are skipped and logged by
    path, or raise AudioDecodeError when `strict`. `on_record(n)` runs after each write.

    Entries with video_features (.npy) or video (run through `video_encoder`, a
    vision.features.FrameEncoder, at one frame per `video_hop_length` samples) also store
    (T, Dv) features; a bad video or feature file is skipped like a bad audio file (or
    raises VideoInputError when `strict`)."""
    from samaudio_jax.data.video_features import VideoInputError, entry_video_features

    summary = WriteSummary()
    with ShardWriter(out_dir, sample_rate, max_shard_bytes, overwrite, video_hop_length) as writer:
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
            except (AudioDecodeError, VideoInputError) as e:
                if strict:
                    raise
                log(f"skipped {e}")
                summary.skipped += 1
                summary.skipped_paths.append(entry.path)
                continue
            writer.add(entry_meta(entry), audio, video)
            summary.written += 1
            if on_record is not None:
                on_record(summary.written)
    summary.shards = len(writer._shards)
    return summary


class ShardReader:
    """Random-access reader over a complete shard directory (a Grain data source).

    Items are dicts from `decode_record`. Pickles without open file handles, so it can be
    sent to spawned Grain workers. `video_dim` / `video_hop_length` are None for an
    audio-only dataset.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index_path = self.directory / INDEX_NAME
        if not self.directory.is_dir():
            raise ShardError(f"{self.directory}: no such shard directory")
        if not index_path.is_file():
            raise ShardError(
                f"{self.directory}: no {INDEX_NAME}; the shard write did not complete "
                "(leftover files are ignored)"
            )
        with open(index_path, encoding="utf-8") as f:
            self.index = json.load(f)
        if self.index.get("format") not in FORMATS:
            raise ShardError(
                f"{index_path}: format {self.index.get('format')!r}, want one of {list(FORMATS)}"
            )
        self.paths = []
        for shard in self.index["shards"]:
            path = self.directory / shard["file"]
            if not path.is_file():
                raise ShardError(f"{path}: listed in {INDEX_NAME} but missing")
            self.paths.append(str(path))
        self.sample_rate = int(self.index["sample_rate"])
        self.records = self.index["records"]
        video = self.index.get("video") or {}
        self.video_dim: int | None = video.get("dim")
        self.video_hop_length: int | None = video.get("hop_length")
        self._source = None

    def _data_source(self):
        if self._source is None:
            import grain

            self._source = grain.sources.ArrayRecordDataSource(self.paths)
            if len(self._source) != len(self.records):
                raise ShardError(
                    f"{self.directory}: shards hold {len(self._source)} records, "
                    f"{INDEX_NAME} lists {len(self.records)}"
                )
        return self._source

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return decode_record(self._data_source()[index])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_source"] = None
        return state
