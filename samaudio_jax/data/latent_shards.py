"""Latent shards: pre-encoded mixtures (what `samaudio-jax encode-shards` writes) and their
reader (a Grain data source beside the audio ShardReader).

A latent dataset is a directory holding `shard-NNNNN.array_record` files of examples,
`text-NNNNN.array_record` files of the text-feature table (data.text_table), and
`index.json`, written last (by process 0, once every shard is done): a directory without it
is incomplete and no reader takes it. Each finished shard also has a small sidecar
`<shard>.json` (its index entries); it is written after the shard's rename and marks the
shard complete, which is how a restarted encode-shards finds where to resume.

Record = `<u32 header length> <JSON header> <latents> [<float16 video features>]`:
- header: id, description, category, group, spans (the source record's, seconds),
  num_samples (of the target clip), frames = ceil(num_samples / hop), text_index (row of
  the text table, -1 when the dataset has none), mixes: one entry per stored mixture with
  seed (the np.random seed sequence its draw came from), others (source record indices
  mixed in), snr_db, activity (active spans of its scaled target, seconds: the span prompt
  when the record has no spans of its own), and, with features, video {shape, dtype};
- latents: (K, 3, frames, latent_dim) little-endian in the index's `latent_dtype`
  (float16, bfloat16 or float32), stream order mixture, target, residual.

index.json: format "samaudio-latents-v1", latent_dtype, mixes (K), codec {kind,
sample_rate, hop_length, latent_dim}, sample_rate, mixing (the data settings the mixes were
drawn with, and the seed), num_records, shards, records (id, description, category, group,
num_samples, frames, text_index, shard), text (the table's description, or null), video
(as for audio shards), source (the audio dataset it was made from).

Paths go through paths.as_path: a dataset may live in a bucket. Shards for a URL are built in
memory (a memfd) and uploaded whole; array_record reads gs:// itself.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from samaudio_jax.data.pipeline import DatasetMismatchError
from samaudio_jax.data.shards import SHARD_SUFFIX, ArrayRecordFile, array_record_source
from samaudio_jax.paths import Path, as_path, url_scheme

FORMAT = "samaudio-latents-v1"
INDEX_NAME = "index.json"
STREAMS = ("mixture", "target", "residual")
LATENT_DTYPES = ("float16", "bfloat16", "float32")
VIDEO_DTYPE = "float16"


class LatentDatasetError(DatasetMismatchError):
    """A latent dataset is incomplete or does not fit the config; the message names both."""


def numpy_dtype(name: str) -> np.dtype:
    """The little-endian numpy dtype for a storage dtype name (bfloat16 via ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if name in ("float16", "float32"):
        return np.dtype(name).newbyteorder("<")
    raise ValueError(f"latent dtype: expected one of {list(LATENT_DTYPES)}, got {name!r}")


def shard_name(kind: str, number: int) -> str:
    """`shard-00003.array_record` (examples) or `text-00003.array_record` (the text table)."""
    return f"{kind}-{number:05d}{SHARD_SUFFIX}"


def encode_record(meta: dict, latents: np.ndarray, dtype: str, video=None) -> bytes:
    """One example: latents (K, 3, frames, C) stored as `dtype`; optional (frames, Dv)
    video features stored as float16."""
    lat = np.ascontiguousarray(np.asarray(latents, np.float32).astype(numpy_dtype(dtype)))
    header = dict(meta)
    payload = lat.tobytes()
    header["latent_shape"] = list(lat.shape)
    if video is not None:
        video = np.ascontiguousarray(video, dtype="<f2")
        header["video"] = {"shape": list(video.shape), "dtype": VIDEO_DTYPE}
        payload += video.tobytes()
    text = json.dumps(header).encode("utf-8")
    return struct.pack("<I", len(text)) + text + payload


def decode_record(data: bytes, dtype: str) -> dict:
    """Header fields plus "latents" (K, 3, frames, C) in the storage dtype and, with
    features, "video" (frames, Dv) float16."""
    (length,) = struct.unpack_from("<I", data, 0)
    meta = json.loads(data[4 : 4 + length].decode("utf-8"))
    shape = tuple(meta.pop("latent_shape"))
    np_dtype = numpy_dtype(dtype)
    count = int(np.prod(shape))
    offset = 4 + length
    meta["latents"] = np.frombuffer(data, np_dtype, count=count, offset=offset).reshape(shape)
    video = meta.pop("video", None)
    if video is not None:
        t, dv = video["shape"]
        offset += count * np_dtype.itemsize
        meta["video"] = np.frombuffer(data, "<f2", count=t * dv, offset=offset).reshape(t, dv)
    return meta


def write_array_record(path: Path, records: list[bytes]) -> None:
    """Writes `records` as one ArrayRecord file at `path`, atomically (shards.ArrayRecordFile)."""
    out = ArrayRecordFile(path)
    try:
        for r in records:
            out.write(r)
    except BaseException:
        out.abort()
        raise
    out.commit()


def latent_record_source(directory: Path, shards: list[dict], present: set[str], expected: int):
    """The shards' records (index entries with file, num_records); every listed file must be
    present. Built by the audio shards' own source builder."""
    for shard in shards:
        if shard["file"] not in present:
            raise LatentDatasetError(
                f"{directory / shard['file']}: listed in {INDEX_NAME} but missing"
            )
    paths = [directory / shard["file"] for shard in shards]
    counts = [shard["num_records"] for shard in shards]
    return array_record_source(directory, paths, counts, expected, LatentDatasetError)


def read_index(directory) -> tuple[Path, dict, set[str]]:
    """(directory, index.json, names present) of a complete dataset; LatentDatasetError
    naming the directory otherwise."""
    directory = as_path(directory)
    scheme = url_scheme(directory)
    if scheme not in (None, "gs"):
        raise LatentDatasetError(
            f"{directory}: array_record reads shards from local disk or gs:// only, not {scheme}://"
        )
    if not directory.is_dir():
        raise LatentDatasetError(f"{directory}: no such latent dataset directory")
    present = {p.name for p in directory.iterdir()}
    if INDEX_NAME not in present:
        raise LatentDatasetError(
            f"{directory}: no {INDEX_NAME}; encode-shards did not finish (run it again to resume)"
        )
    index = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
    return directory, index, present


def is_latent_index(index: dict) -> bool:
    return index.get("format") == FORMAT


class LatentShardReader:
    """Random-access reader over a complete latent dataset (a Grain data source).

    Items are dicts from `decode_record`; `records` are the index entries. Pickles without
    open files (Grain workers). `text_table()` opens the dataset's text-feature table."""

    def __init__(self, directory):
        self.directory, self.index, self._present = read_index(directory)
        if not is_latent_index(self.index):
            raise LatentDatasetError(
                f"{self.directory / INDEX_NAME}: format {self.index.get('format')!r}, "
                f"want {FORMAT!r} (encode-shards output)"
            )
        self.latent_dtype = self.index["latent_dtype"]
        self.mixes = int(self.index["mixes"])
        codec = self.index["codec"]
        self.sample_rate = int(self.index["sample_rate"])
        self.hop_length = int(codec["hop_length"])
        self.latent_dim = int(codec["latent_dim"])
        self.records = self.index["records"]
        video = self.index.get("video") or {}
        self.video_dim = video.get("dim")
        self.video_hop_length = video.get("hop_length")
        self._source = None

    def _data_source(self):
        if self._source is None:
            self._source = latent_record_source(
                self.directory, self.index["shards"], self._present, len(self.records)
            )
        return self._source

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return decode_record(self._data_source()[int(index)], self.latent_dtype)

    def text_table(self):
        """The dataset's TextTable, or None when it was encoded without one."""
        from samaudio_jax.data.text_table import TextTable

        if not self.index.get("text"):
            return None
        return TextTable(self.directory, self.index["text"], self._present)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_source"] = None
        return state


def check_against_config(reader: LatentShardReader, config) -> None:
    """Raises LatentDatasetError (one line naming the index value and the config field) when
    the dataset's latents do not fit the model or codec of `config`, or when the config's
    frozen T5 needs a text table the dataset lacks."""
    where = reader.directory / INDEX_NAME
    codec = reader.index["codec"]
    checks = (
        ("latent_dim", reader.latent_dim, "codec.latent_dim", int(config.codec.latent_dim)),
        ("hop_length", reader.hop_length, "codec.hop_length", int(config.codec.hop_length)),
        (
            "sample_rate",
            int(codec["sample_rate"]),
            "codec.sample_rate",
            int(config.codec.sample_rate),
        ),
        ("sample_rate", reader.sample_rate, "data.sample_rate", int(config.data.sample_rate)),
        # shapes first (the more specific message); then another codec's latents, which
        # live in another space even when their shapes agree
        ("kind", codec.get("kind"), "codec.kind", str(config.codec.kind)),
    )
    for field, have, name, want in checks:
        if have != want:
            raise LatentDatasetError(
                f"{where}: latents have {field} {have} (codec.{field} in the index) but "
                f"config.{name} is {want}; encode the dataset with this config or train "
                "with the one it was made with"
            )
    if config.text.kind == "t5":
        text = reader.index.get("text")
        if not text:
            raise LatentDatasetError(
                f"{where}: no text-feature table (encoded with text.kind "
                f"{reader.index.get('text_kind', 'small')!r}) but config.text.kind is 't5'; "
                "run encode-shards with the T5 config"
            )
        if int(text["dim"]) != int(config.model.text_dim):
            raise LatentDatasetError(
                f"{where}: text features are {text['dim']} wide (text.dim in the index) but "
                f"config.model.text_dim is {config.model.text_dim}"
            )
