"""ArrayRecord shards of mono audio (and optional video features): the record format,
audio decoding and the shard reader (the writer: shard_writer.py).

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

import json
import os
import struct

import numpy as np

from samaudio_jax.io_read import readable_file
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

    try:  # a URL is read into memory: soundfile decodes from a file object
        source = readable_file(path)
    except IsADirectoryError:
        raise AudioDecodeError(f"{path}: is a directory, not an audio file") from None
    except (FileNotFoundError, EOFError) as e:
        raise AudioDecodeError(str(e)) from None
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


class ArrayRecordFile:
    """One ArrayRecord file that appears complete or not at all: a local file is written as
    `<name>.tmp`, synced and renamed by `commit`; a URL's is built in a memfd (array_record
    writes only to a file name; nothing on local disk) and uploaded whole by `commit`.
    `abort` leaves nothing behind but a local `.tmp` (which no reader lists)."""

    def __init__(self, path):
        from array_record.python.array_record_module import ArrayRecordWriter

        self.path = as_path(path)
        self._fd = None
        if is_url(self.path):
            self._fd = os.memfd_create(self.path.name)
            target = f"/proc/self/fd/{self._fd}"
        else:
            self._tmp = self.path.with_name(self.path.name + ".tmp")
            target = os.fspath(self._tmp)
        self._writer = ArrayRecordWriter(target, "group_size:1")

    def write(self, record: bytes) -> None:
        self._writer.write(record)

    def commit(self) -> None:
        self._writer.close()
        try:
            if self._fd is None:
                with open(self._tmp, "rb+") as f:  # on disk before the name says complete
                    os.fsync(f.fileno())
                os.replace(self._tmp, self.path)
            else:
                self.path.write_bytes(_read_fd(self._fd))
        finally:
            self._drop()

    def abort(self) -> None:
        self._writer.close()
        self._drop()

    def _drop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_fd(fd: int) -> bytes:
    """The whole content of file descriptor `fd` (a closed file's memfd)."""
    size = os.fstat(fd).st_size
    parts, offset = [], 0
    while offset < size:  # pread returns at most ~2 GiB per call
        part = os.pread(fd, min(size - offset, 1 << 30), offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


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
