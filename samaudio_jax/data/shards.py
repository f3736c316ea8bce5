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

URLs (paths.as_path): a shard for a URL directory is written into memory (a memfd; nothing
on local disk) and uploaded in one piece when closed, as is index.json, last: an object
upload is atomic, so the same rule holds. Reading: array_record's reader opens gs:// itself
(ranged reads through its own GCS client: Application Default Credentials, or the emulator
at CLOUD_STORAGE_EMULATOR_ENDPOINT); other URL schemes are refused by name. Audio files
named by URL are read into memory and decoded from there.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import struct
from collections.abc import Callable, Iterable

import numpy as np

from samaudio_jax.data.manifest import ManifestEntry
from samaudio_jax.paths import Path, as_path, is_url, url_scheme

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

    source = path
    if is_url(path):  # read into memory: soundfile decodes from a file object
        url = as_path(path)
        if not url.exists():
            raise AudioDecodeError(f"{path}: no such file")
        if url.is_dir():
            raise AudioDecodeError(f"{path}: is a directory, not an audio file")
        source = io.BytesIO(url.read_bytes())
        if not source.getbuffer().nbytes:
            raise AudioDecodeError(f"{path}: zero-length file")
    elif not os.path.exists(path):
        raise AudioDecodeError(f"{path}: no such file")
    elif os.path.isdir(path):
        raise AudioDecodeError(f"{path}: is a directory, not an audio file")
    elif os.path.getsize(path) == 0:
        raise AudioDecodeError(f"{path}: zero-length file")
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
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
    return np.asarray(mono, dtype=np.float32, order="C")


def video_to_float16(video: np.ndarray, where: str) -> np.ndarray:
    """(T, Dv) features as little-endian float16; ValueError naming `where` if they are not
    2-D or do not fit float16 (non-finite, or beyond +-65504)."""
    video = np.asarray(video)
    if video.ndim != 2 or video.shape[1] == 0:
        raise ValueError(f"{where}: video features must be (T, Dv), got shape {video.shape}")
    if not np.all(np.isfinite(video)) or np.max(np.abs(video), initial=0.0) > 65504.0:
        raise ValueError(f"{where}: video features hold NaN, infinite or >65504 values")
    return np.asarray(video, dtype="<f2", order="C")


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
    if is_url(path):  # one upload: the object appears whole or not at all
        path.write_text(json.dumps(obj), encoding="utf-8")
        return
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
        self._in_memory = is_url(self.out_dir)
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
        # A bucket "directory" exists only once an object is in it; listing it before fails.
        existing = self.out_dir.iterdir() if self.out_dir.exists() else ()
        for old in existing:
            if leftover.fullmatch(old.name):
                old.unlink()
        self._records: list[dict] = []
        self._shards: list[dict] = []
        self._writer = None
        self._memfd: int | None = None
        self._shard_bytes = 0
        self._shard_count = 0

    def _open_shard(self) -> None:
        from array_record.python.array_record_module import ArrayRecordWriter

        name = f"shard-{len(self._shards):05d}{SHARD_SUFFIX}"
        if self._in_memory:  # array_record writes only to a file name: give it a memfd's
            self._memfd = os.memfd_create(name)
            target = f"/proc/self/fd/{self._memfd}"
        else:
            self._tmp_path = self.out_dir / (name + ".tmp")
            target = os.fspath(self._tmp_path)
        self._writer = ArrayRecordWriter(target, "group_size:1")
        self._shards.append({"file": name, "num_records": 0, "bytes": 0})
        self._shard_bytes = 0

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        final = self.out_dir / self._shards[-1]["file"]
        if not self._in_memory:
            os.replace(self._tmp_path, final)
            return
        try:
            final.write_bytes(_read_fd(self._memfd))
        finally:
            self._drop_memfd()

    def _drop_memfd(self) -> None:
        if self._memfd is not None:
            os.close(self._memfd)
            self._memfd = None

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
        _write_json_atomic(self.out_dir / INDEX_NAME, index)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        elif self._writer is not None:
            self._writer.close()
            self._drop_memfd()
        return False


def _read_fd(fd: int) -> bytes:
    """The whole content of file descriptor `fd` (a closed shard's memfd)."""
    size = os.fstat(fd).st_size
    parts, offset = [], 0
    while offset < size:  # pread returns at most ~2 GiB per call
        part = os.pread(fd, min(size - offset, 1 << 30), offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


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
    from samaudio_jax.data.video_features import entry_video_features

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


class ShardReader:
    """Random-access reader over a complete shard directory (a Grain data source).

    Items are dicts from `decode_record`. Pickles without open file handles, so it can be
    sent to spawned Grain workers. `video_dim` / `video_hop_length` are None for an
    audio-only dataset.
    """

    def __init__(self, directory: str | Path):
        self.directory = as_path(directory)
        scheme = url_scheme(self.directory)
        if scheme not in (None, "gs"):
            raise ShardError(
                f"{self.directory}: array_record reads shards from local disk or gs:// only, "
                f"not {scheme}://; copy the dataset to one of those"
            )
        index_path = self.directory / INDEX_NAME
        if not self.directory.is_dir():
            raise ShardError(f"{self.directory}: no such shard directory")
        # One listing instead of a request per file: on a bucket each check is a round trip.
        present = {p.name for p in self.directory.iterdir()}
        if INDEX_NAME not in present:
            raise ShardError(
                f"{self.directory}: no {INDEX_NAME}; the shard write did not complete "
                "(leftover files are ignored)"
            )
        self.index = json.loads(index_path.read_text(encoding="utf-8"))
        if self.index.get("format") not in FORMATS:
            raise ShardError(
                f"{index_path}: format {self.index.get('format')!r}, want one of {list(FORMATS)}"
            )
        self.paths = []
        for shard in self.index["shards"]:
            if shard["file"] not in present:
                raise ShardError(
                    f"{self.directory / shard['file']}: listed in {INDEX_NAME} but missing"
                )
            self.paths.append(os.fspath(self.directory / shard["file"]))
        self.sample_rate = int(self.index["sample_rate"])
        self.records = self.index["records"]
        video = self.index.get("video") or {}
        self.video_dim: int | None = video.get("dim")
        self.video_hop_length: int | None = video.get("hop_length")
        self._source = None

    def _data_source(self):
        if self._source is None:
            counts = [shard["num_records"] for shard in self.index["shards"]]
            self._source = array_record_source(
                self.directory, self.paths, counts, len(self.records), ShardError
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


def array_record_source(directory, paths, counts, expected: int, error=None):
    """A grain ArrayRecordDataSource over shard files `paths` holding `counts` records (from
    the index). On a bucket the counts are given as "file[0:n]", so building the source opens
    no shard over the network just to count it (array_record opens gs:// itself). Raises
    `error` (ShardError by default) when the shards hold another total than `expected`."""
    import grain

    paths = [os.fspath(p) for p in paths]
    if is_url(directory):
        _bridge_gcs_emulator()
        paths = [f"{p}[0:{n}]" for p, n in zip(paths, counts, strict=True)]
    source = grain.sources.ArrayRecordDataSource(paths)
    if len(source) != expected:
        raise (error or ShardError)(
            f"{directory}: shards hold {len(source)} records, {INDEX_NAME} lists {expected}"
        )
    return source


def _bridge_gcs_emulator() -> None:
    """Points array_record's GCS client at the emulator gcsfs uses, when only gcsfs's variable
    (STORAGE_EMULATOR_HOST) is set: the two clients then read the same bucket. Without an
    emulator both use Google's default credentials; nothing changes."""
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if host and not os.environ.get("CLOUD_STORAGE_EMULATOR_ENDPOINT"):
        if "://" not in host:
            host = f"http://{host}"
        os.environ["CLOUD_STORAGE_EMULATOR_ENDPOINT"] = host
