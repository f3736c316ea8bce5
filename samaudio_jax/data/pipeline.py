"""The Grain input pipeline: shards -> per-process slice -> shuffle -> crop + mix -> batches.

    source = ShardReader(dir)                      # or TfdsRecordSource(tfds.data_source(...))
    ds = make_dataset(source, PipelineConfig.from_config(cfg.data), batch_size=B, seed=0,
                      shard_index=jax.process_index(), shard_count=jax.process_count())
    it = iter(ds)                                  # grain DatasetIterator
    batch = next(it)                               # dict of numpy arrays, per-process batch
    state = it.get_state(); it.set_state(state)    # exact resume (also with workers)
    # With Orbax: args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)) to save,
    # grain.checkpoint.CheckpointRestore(it) to restore (one JSON file per process).
    # Globally: jax.make_array_from_process_local_data(sharding, batch[key]) per key.
    ds = dataset_from_config(cfg, "train")         # all of the above from a full config

Each example is one target record cropped at random to at most N = segment samples (with
data.min_active_fraction > 0, among crops holding that fraction of active target:
data/crops.py) and
mixed with 1..k other sources (members of its source group when it has one, time-aligned;
otherwise random records of other groups, and with data.distinct_descriptions, of other
descriptions, so the text prompt stays unambiguous) at SNRs drawn from the configured range.
Randomness comes from (seed, position in the stream), so it does not depend on workers.
A latent dataset (encode-shards output; open_split tells by its index) yields latent
examples instead (MakeLatentExample: a stored mix, cropped by whole latent frames).
data.dir may be a URL (gs://...): index.json is read through paths.as_path and the shards
by array_record's own GCS reader (data.shards).

With data.worker_count > 0, batches come from grain mp_prefetch worker processes, started
by spawn: the calling program needs an `if __name__ == "__main__":` guard.

Batch keys (B = per-process batch size, N = segment samples, K = max_spans, S =
max_sources, D = description_bytes):
- mixture, target, residual: (B, N) float32; residual = mixture - target; zero past valid.
- valid: (B, N) bool, True on real samples (clips shorter than N are padded).
- spans: (B, K, 3) float32 rows (code, start_s, end_s), code 0 unused / 1 "+" / 2 "-"
  (samaudio_jax.data.spans encoding); all zero when the span prompt is dropped.
- category: (B,) int32 index into manifest.CATEGORIES.
- description: (B, D) uint8 UTF-8 bytes, zero padded; description_length: (B,) int32
  (0 when the text prompt is dropped).
- text_ids, text_mask: only with a `tokenize` hook (list[str] -> (ids, mask)).
- snr_db: (B, S) float32 per other source (0 on unused slots); num_sources: (B,) int32,
  how many other sources are mixed in.
- index: (B,) int64 record index of the target.
- video, has_video: only when the dataset carries visual-prompt features (index.json
  "video"; make-shards with video / video_features): video (B, Dv, F) float32, the
  target's per-latent-frame features cropped with the audio's offset, F = ceil(N / hop)
  segment frames, zero on padding frames and for examples without video; has_video (B,)
  bool. The crop offset is then a whole number of latent frames (a multiple of hop
  samples), so frame f of the segment is frame offset / hop + f of the record.
  Prompt dropout (text, spans, video: train.cond_dropout and its per-prompt rates) happens
  in the train step, not here (a dropped video is zeros, the release's "no video").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import grain
import numpy as np

from samaudio_jax.data.examples import (  # noqa: F401  (DatasetMismatchError: public here too)
    DatasetMismatchError,
    MakeExample,
    MakeLatentExample,
    check_video_features,
)
from samaudio_jax.data.shards import INDEX_NAME, ShardReader
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    sample_rate: int = 48000
    segment_seconds: float = 10.0
    min_sources: int = 1
    max_sources: int = 2
    snr_db: tuple[float, float] = (-15.0, 15.0)
    target_rms_db: float = -20.0
    negative_span_prob: float = 0.3
    max_spans: int = 4
    description_bytes: int = 128
    activity_threshold_db: float = -35.0
    # Crops of records longer than the segment hold at least this fraction of active target
    # (data/crops.py); 0 = plain uniform crops.
    min_active_fraction: float = 0.0
    distinct_descriptions: bool = True
    latent_mixes: str = "one"  # latent datasets: "one" mix per draw, or "all" (each an item)
    read_threads: int = 4
    worker_count: int = 0
    prefetch_buffer_size: int = 2

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @classmethod
    def from_config(cls, data) -> PipelineConfig:
        """From the `data` section of the ConfigDict (config_schema.default_config())."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: data[k] for k in names if k in data}
        if "snr_db" in values:
            values["snr_db"] = tuple(float(x) for x in values["snr_db"])
        return cls(**values).validated()

    def validated(self) -> PipelineConfig:
        if not 0 <= self.min_sources <= self.max_sources:
            raise ValueError(
                f"data.min_sources {self.min_sources} / max_sources {self.max_sources}: "
                "need 0 <= min <= max"
            )
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"data.snr_db must be (low, high), got {self.snr_db}")
        if self.segment_samples <= 0:
            raise ValueError(f"data.segment_seconds must be positive, got {self.segment_seconds}")
        if self.latent_mixes not in ("one", "all"):
            raise ValueError(f"data.latent_mixes must be 'one' or 'all', got {self.latent_mixes!r}")
        if self.max_spans < 1:
            raise ValueError(f"data.max_spans must be >= 1, got {self.max_spans}")
        if not 0.0 <= self.min_active_fraction <= 1.0:
            raise ValueError(
                f"data.min_active_fraction must be in [0, 1], got {self.min_active_fraction}"
            )
        return self


class Collate:
    """Stacks examples on axis 0; with `tokenize`, adds text_ids / text_mask."""

    def __init__(self, tokenize: Callable | None = None):
        self.tokenize = tokenize

    def __call__(self, examples) -> dict:
        batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        if self.tokenize is not None:
            ids, mask = self.tokenize(descriptions(batch))
            batch["text_ids"] = np.asarray(ids)
            batch["text_mask"] = np.asarray(mask)
        return batch


def descriptions(batch: dict) -> list[str]:
    """The batch's description strings (empty where the text prompt was dropped)."""
    return [
        bytes(d[:n]).decode("utf-8", errors="ignore")
        for d, n in zip(batch["description"], batch["description_length"], strict=True)
    ]


def make_dataset(
    source,
    config: PipelineConfig,
    batch_size: int,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    num_epochs: int | None = None,
    shuffle: bool = True,
    drop_remainder: bool = True,
    tokenize: Callable | None = None,
    text_table=None,
) -> grain.IterDataset:
    """The batched IterDataset for one process. Records shard_index::shard_count are this
    process's targets (disjoint across processes, covering the split); other sources mixed
    in may come from any record. num_epochs=None repeats forever (reshuffled each epoch);
    with a finite num_epochs processes may differ by a batch, so stop them together.
    A LatentShardReader source yields latent examples (MakeLatentExample); `text_table`
    (its TextTable) adds the descriptions' T5 features."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} must be in [0, shard_count={shard_count})")
    where = getattr(source, "directory", source)
    if len(source) == 0:
        raise ValueError(f"{where}: the dataset is empty")
    rate = getattr(source, "sample_rate", config.sample_rate)
    if rate != config.sample_rate:
        raise ValueError(
            f"{where}: stored at {rate} Hz but data.sample_rate is {config.sample_rate}"
        )
    latent = getattr(source, "latent_dtype", None) is not None
    items = len(source) * (source.mixes if latent and config.latent_mixes == "all" else 1)
    ds = grain.MapDataset.range(items)[shard_index::shard_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    if latent:
        ds = ds.random_map(MakeLatentExample(source, config, text_table), seed=seed)
    else:
        ds = ds.random_map(MakeExample(source, config), seed=seed)
    ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=config.read_threads, prefetch_buffer_size=8)
    )
    if config.worker_count > 0:
        # Workers make examples (decode, mix: the heavy part); worker i takes examples
        # i, i + n, ... and Grain reads the workers in turn, so the example order, hence
        # every batch, is that of worker_count=0. Batching (and tokenizing) stays here.
        _ensure_absl_flags_parsed()
        ds = ds.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=config.worker_count,
                per_worker_buffer_size=config.prefetch_buffer_size * batch_size,
            )
        )
    return ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=Collate(tokenize))


def _ensure_absl_flags_parsed() -> None:
    # Grain's workers read absl flags; a program that never ran absl.app has not parsed them.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def open_split(data, split: str = "train"):
    """The record source for `split` from the config's data section: TFDS when
    data.tfds_name is set (prepared under data.dir), else the shard directory
    data.dir/<split> (or data.dir itself when it is one complete shard directory)."""
    if not data.dir:
        raise ValueError("data.dir: empty; give the make-shards / synth output directory")
    if data.tfds_name:
        from samaudio_jax.data.tfds_builder import load_tfds_source

        return load_tfds_source(data.dir, split, data.tfds_name)
    root = as_path(data.dir)  # a gs:// data.dir stays a URL
    for directory in (root / split, root):
        if (directory / INDEX_NAME).is_file():
            return _open_shards(directory)
    raise ValueError(f"data.dir {root}: neither {split}/{INDEX_NAME} nor {INDEX_NAME} exists")


def _open_shards(directory: Path):
    """ShardReader for audio shards, LatentShardReader for encode-shards output (the index's
    format says which)."""
    from samaudio_jax.data import latent_shards

    index = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
    if latent_shards.is_latent_index(index):
        return latent_shards.LatentShardReader(directory)
    return ShardReader(directory)


def dataset_from_config(
    config, split: str = "train", tokenize: Callable | None = None, num_epochs=None
) -> grain.IterDataset:
    """make_dataset for this process from a full config: per-process batch =
    train.global_batch_size / jax.process_count(), shuffle seed data.shuffle_seed."""
    index, count = process_shard()
    source = open_split(config.data, split)
    text_table = None
    if getattr(source, "latent_dtype", None) is not None:
        from samaudio_jax.data.latent_shards import check_against_config

        check_against_config(source, config)
        if config.text.kind == "t5":  # features from the table; the step runs no T5
            text_table, tokenize = source.text_table(), None
    else:
        check_video_features(source, config)
    if config.train.global_batch_size % count:
        raise ValueError(
            f"train.global_batch_size {config.train.global_batch_size} is not divisible by "
            f"the {count} processes"
        )
    return make_dataset(
        source,
        PipelineConfig.from_config(config.data),
        batch_size=config.train.global_batch_size // count,
        seed=config.data.shuffle_seed,
        shard_index=index,
        shard_count=count,
        num_epochs=num_epochs,
        tokenize=tokenize,
        text_table=text_table,
    )


def process_shard() -> tuple[int, int]:
    """(jax.process_index(), jax.process_count()) for make_dataset's sharding."""
    import jax

    return jax.process_index(), jax.process_count()


def save_iterator_state(iterator, path: str | Path) -> None:
    """Writes iterator.get_state() as JSON, atomically (temp name + rename; a URL in one
    upload). For Orbax, use grain.checkpoint.CheckpointSave(iterator) /
    CheckpointRestore(iterator) instead."""
    atomic_write_text(path, json.dumps(iterator.get_state()))


def restore_iterator_state(iterator, path: str | Path) -> None:
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved iterator state")
    iterator.set_state(json.loads(path.read_text(encoding="utf-8")))
