"""A TFDS dataset (file_format array_record) holding the records of make-shards directories.

    prepare_tfds(shards_root, data_dir)          # shards_root/<split>/index.json -> TFDS
    source = load_tfds_source(data_dir, "train")  # tfds.data_source, no TensorFlow needed
    ds = make_dataset(source, ...)               # pipeline.make_dataset accepts it

Audio is stored as int16 PCM as in the shards. The per-record metadata the pipeline needs
for choosing sources (description, category, group, length) is kept in the dataset's
metadata, so loading does not scan the audio. Visual-prompt features of shard directories
that carry them are stored as float16, flattened ("video", T * Dv values, empty for an
example without video) with their frame count ("video_frames"); Dv and the latent hop are in
the split's metadata, as in the shards' index.json.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from samaudio_jax.data.manifest import CATEGORIES
from samaudio_jax.data.shards import INDEX_NAME, PCM_SCALE, ShardReader
from samaudio_jax.paths import Path, as_path

DATASET_NAME = "sam_audio_shards"


class SamAudioShards(tfds.core.GeneratorBasedBuilder):
    """Audio separation examples from shard directories (one split per subdirectory)."""

    name = DATASET_NAME
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "First version.", "1.1.0": "Visual-prompt features."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # TFDS's own lookup needs importlib_resources when the package is not installed.
        return epath.Path(__file__)

    def __init__(self, *, shards_root: str | Path | None = None, **kwargs):
        self._shards_root = as_path(shards_root) if shards_root else None
        super().__init__(file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                    "sample_rate": tfds.features.Tensor(shape=(), dtype=np.int32),
                    "id": tfds.features.Text(),
                    "description": tfds.features.Text(),
                    "category": tfds.features.ClassLabel(names=list(CATEGORIES)),
                    "group": tfds.features.Text(),
                    "spans": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
                    "video": tfds.features.Tensor(shape=(None,), dtype=np.float16),
                    "video_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
                }
            ),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # keep shard order, so metadata index i is record i
        )

    def _split_generators(self, dl_manager):
        if self._shards_root is None:
            raise ValueError(f"{DATASET_NAME}: preparing needs shards_root=<make-shards output>")
        splits = sorted(p.parent.name for p in self._shards_root.glob(f"*/{INDEX_NAME}"))
        if not splits:
            raise ValueError(f"{self._shards_root}: no <split>/{INDEX_NAME} directories")
        for split in splits:
            reader = ShardReader(self._shards_root / split)
            meta = {"sample_rate": reader.sample_rate, "records": reader.records}
            if reader.video_dim is not None:
                meta["video"] = {
                    "dim": int(reader.video_dim),
                    "hop_length": int(reader.video_hop_length),
                }
            self.info.metadata[split] = meta
        return {split: self._generate_examples(self._shards_root / split) for split in splits}

    def _generate_examples(self, directory: Path):
        reader = ShardReader(directory)
        for i in range(len(reader)):
            r = reader[i]
            video = r.get("video")
            video = np.zeros((0, 0), np.float16) if video is None else np.asarray(video, np.float16)
            yield (
                i,
                {
                    "audio": np.round(r["audio"] * PCM_SCALE).astype(np.int16),
                    "sample_rate": np.int32(reader.sample_rate),
                    "id": r.get("id", ""),
                    "description": r.get("description", ""),
                    "category": r.get("category", "unknown"),
                    "group": r.get("group", ""),
                    "spans": np.asarray(r.get("spans") or np.zeros((0, 2)), np.float32).reshape(
                        -1, 2
                    ),
                    "video": video.reshape(-1),
                    "video_frames": np.int32(video.shape[0]),
                },
            )


def prepare_tfds(shards_root: str | Path, data_dir: str | Path) -> SamAudioShards:
    builder = SamAudioShards(shards_root=shards_root, data_dir=str(as_path(data_dir)))
    builder.download_and_prepare()
    return builder


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class TfdsRecordSource:
    """Adapts a tfds.data_source split to the record dicts the pipeline reads."""

    def __init__(
        self,
        source,
        records: list[dict],
        sample_rate: int,
        name: str = "",
        video: dict | None = None,
    ):
        self.source = source
        self.records = records
        self.sample_rate = sample_rate
        self.directory = name
        self.video_dim = None if video is None else int(video["dim"])
        self.video_hop_length = None if video is None else int(video["hop_length"])

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        ex = self.source[index]
        record = {
            "audio": np.asarray(ex["audio"], np.float32) / PCM_SCALE,
            "id": _text(ex["id"]),
            "description": _text(ex["description"]),
            "category": CATEGORIES[int(ex["category"])],
            "group": _text(ex["group"]),
            "spans": np.asarray(ex["spans"]).tolist(),
        }
        frames = int(ex.get("video_frames", 0))
        if self.video_dim is not None and frames > 0:
            record["video"] = np.asarray(ex["video"], np.float16).reshape(frames, self.video_dim)
        return record


def load_tfds_source(
    data_dir: str | Path, split: str, name: str = DATASET_NAME
) -> TfdsRecordSource:
    """tfds.data_source(name, split) wrapped for pipeline.make_dataset."""
    builder = tfds.builder(name, data_dir=str(as_path(data_dir)))
    meta = builder.info.metadata.get(split) if builder.info.metadata else None
    if meta is None:
        raise ValueError(f"{data_dir}: {name} has no metadata for split {split!r}")
    source = tfds.data_source(name, data_dir=str(as_path(data_dir)), split=split)
    return TfdsRecordSource(
        source,
        meta["records"],
        int(meta["sample_rate"]),
        f"{data_dir}:{split}",
        video=meta.get("video"),
    )
