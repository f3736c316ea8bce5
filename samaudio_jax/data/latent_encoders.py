"""What `samaudio-jax encode-shards` (cli/encode_shards.py) reads and how it encodes it:
open_audio_source (audio shards or a manifest, checked against the config); LatentEncoder
draws a record's K mixtures with the pipeline's mixing rules and encodes mixture, target and
residual with the frozen codec, jitted over this process's devices (batch split, weights
replicated; batch per device from XLA's memory analysis when not given); TextFeatures
computes the distinct descriptions' T5 features. Each writes one shard (latent_shards,
text_table).
"""

from __future__ import annotations

import json

import numpy as np

from samaudio_jax.data import latent_shards, text_table
from samaudio_jax.data.latent_shards import LatentDatasetError
from samaudio_jax.paths import as_path

CPU_BATCH_PER_DEVICE = 4
LENGTH_BUCKET_FRAMES = 16  # waveforms of a batch are padded to a multiple of this many hops


class ManifestSource:
    """A manifest as a record source: entries decoded (and resampled) when read."""

    def __init__(self, path, sample_rate: int, min_input_rate: int = 0):
        from samaudio_jax.data.manifest import read_manifest

        self.directory = as_path(path)
        self.entries = read_manifest(path)
        self.sample_rate = int(sample_rate)
        self.min_input_rate = int(min_input_rate)
        self.records = [
            {"id": e.id, "description": e.description, "category": e.category, "group": e.group}
            for e in self.entries
        ]
        self.video_dim = None
        self.video_hop_length = None
        if any(e.has_video for e in self.entries):
            raise ValueError(
                f"{path}: rows with video; run make-shards on the manifest first (it computes "
                "the video features), then encode-shards on its output"
            )

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        from samaudio_jax.data.shard_writer import entry_meta
        from samaudio_jax.data.shards import decode_audio

        e = self.entries[int(index)]
        audio = decode_audio(e.path, self.sample_rate, e.sample_rate, self.min_input_rate)
        return {**entry_meta(e), "audio": audio, "num_samples": len(audio)}


def open_audio_source(data: str, split: str, config):
    """The audio record source named by --data, checked against the config: its sample rate
    must be data.sample_rate and codec.sample_rate (the codec reads it as it is), its video
    features (if any) one per codec hop."""
    from samaudio_jax.data.pipeline import check_video_features
    from samaudio_jax.data.shards import INDEX_NAME, ShardReader

    path = as_path(data)
    if path.is_file():
        return ManifestSource(data, config.data.sample_rate, config.data.min_input_rate)
    directory = path / split if (path / split / INDEX_NAME).is_file() else path
    if (directory / INDEX_NAME).is_file():
        index = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
        if latent_shards.is_latent_index(index):
            raise LatentDatasetError(
                f"{directory}: already a latent dataset (encode-shards output)"
            )
    source = ShardReader(directory)
    where = directory / INDEX_NAME
    for name in ("data.sample_rate", "codec.sample_rate"):
        section, field = name.split(".")
        want = int(config[section][field])
        if source.sample_rate != want:
            raise LatentDatasetError(
                f"{where}: audio stored at {source.sample_rate} Hz (sample_rate in the index) "
                f"but config.{name} is {want}; make the shards at the codec's rate"
            )
    check_video_features(source, config)
    return source


def text_dtype(latent_dtype: str) -> str:
    """The table's dtype: the latents' (float32 stays float32)."""
    return latent_dtype


# -- the encoders -------------------------------------------------------------------------


def _local_mesh():
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.local_devices()), ("batch",))


def _replicated_jit(module, call):
    """(devices, batch sharding, weights, jitted f(weights, *batch args)) for `call(module,
    *args)` over this process's devices: the weights replicated, every argument and the
    output split along the batch axis."""
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = _local_mesh()
    batch_sh = NamedSharding(mesh, PartitionSpec("batch"))
    replicated = NamedSharding(mesh, PartitionSpec())
    graph, state = nnx.split(module)
    fn = jax.jit(
        lambda s, a, b: call(nnx.merge(graph, s), a, b),
        in_shardings=(replicated, batch_sh, batch_sh),
        out_shardings=batch_sh,
    )
    return list(mesh.devices.flat), batch_sh, jax.device_put(state, replicated), fn


def _auto_batch(compile_for_batch, devices) -> int:
    """Examples per device: half of a device's memory over what one example needs (XLA's
    memory analysis of the compiled program at one example per device)."""
    limit = None
    try:
        stats = devices[0].memory_stats() or {}
        limit = stats.get("bytes_limit")
    except Exception:  # backends without memory stats (the CPU)
        pass
    if not limit:
        return CPU_BATCH_PER_DEVICE
    m = compile_for_batch(len(devices)).memory_analysis()
    per = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    return int(max(1, min(256, 0.5 * limit // max(per, 1))))


class LatentEncoder:
    """Mixes a shard's records and encodes them with the codec, jitted over local devices."""

    def __init__(self, config, source, codec, batch_per_device: int):

        from samaudio_jax.data.pipeline import MakeExample, PipelineConfig

        if codec is None:
            from samaudio_jax.codec import build_codec

            codec = build_codec(config.codec)
        self.config = config
        self.source = source
        self.mixer = MakeExample(source, PipelineConfig.from_config(config.data))
        self.hop = int(codec.hop_length)
        self.rate = int(source.sample_rate)
        self.devices, self.batch_sh, self.state, self.fn = _replicated_jit(
            codec, lambda c, wav, n: c.encode(wav, n)
        )
        # The batch is fixed before any shard (from the longest record, not the shard at
        # hand): a restarted run groups every shard's waveforms as the first run did.
        lengths = [int(r.get("num_samples", 0)) for r in source.records]
        longest = max(lengths + [int(round(config.data.segment_seconds * self.rate))])
        bucket = self.hop * LENGTH_BUCKET_FRAMES
        longest = -(-longest // bucket) * bucket
        per = batch_per_device or _auto_batch(self._compile_for(longest), self.devices)
        self.batch = per * len(self.devices)

    def _compile_for(self, length: int):
        import jax
        import jax.numpy as jnp

        def compile_for_batch(b):
            wav = jax.ShapeDtypeStruct((b, length), jnp.float32, sharding=self.batch_sh)
            n = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=self.batch_sh)
            return self.fn.lower(self.state, wav, n).compile()

        return compile_for_batch

    def encode(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Each waveform's (ceil(len / hop), C) latents, encoded as if alone (num_samples)."""
        import jax

        bucket = self.hop * LENGTH_BUCKET_FRAMES
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        out: list[np.ndarray | None] = [None] * len(waves)
        for start in range(0, len(order), self.batch):
            ids = order[start : start + self.batch]
            length = -(-max(len(waves[i]) for i in ids) // bucket) * bucket
            wav = np.zeros((self.batch, length), np.float32)
            num = np.zeros((self.batch,), np.int32)
            for row, i in enumerate(ids):
                wav[row, : len(waves[i])] = waves[i]
                num[row] = len(waves[i])
            num[len(ids) :] = length  # filler rows: whole zero clips
            lat = self.fn(
                self.state, jax.device_put(wav, self.batch_sh), jax.device_put(num, self.batch_sh)
            )
            lat = np.asarray(jax.device_get(lat))
            for row, i in enumerate(ids):
                out[i] = lat[row, : -(-len(waves[i]) // self.hop)]
        return out

    def mixes_of(self, index: int, mixes: int, seed: int):
        """(audio record, [(seed, mixture, target, residual, snrs, others), ...])."""
        from samaudio_jax.data.mixing import activity_spans

        record = self.source[index]
        audio = record["audio"]
        out = []
        for k in range(mixes):
            seq = [int(seed), int(index), int(k)]
            rng = np.random.default_rng(seq)
            mixture, target, residual, snrs, others = self.mixer.mix_at(
                index, audio, 0, len(audio), rng
            )
            activity = activity_spans(
                target, self.rate, threshold_db=self.mixer.config.activity_threshold_db
            )
            info = {
                "seed": seq,
                "others": [int(o) for o in others],
                "snr_db": [float(s) for s in snrs],
                "activity": [[float(a), float(b)] for a, b in activity],
            }
            out.append((info, mixture, target, residual))
        return record, out

    def write_shard(self, path, indices, mixes, seed, dtype, rows, progress) -> dict:
        records, entries = [], []
        batch_items = max(1, self.batch // (3 * mixes))
        indices = list(indices)
        for start in range(0, len(indices), batch_items):
            chunk = indices[start : start + batch_items]
            made = [self.mixes_of(i, mixes, seed) for i in chunk]
            waves = [w for _, ms in made for (_, *streams) in ms for w in streams]
            latents = self.encode(waves)
            at = 0
            for i, (record, ms) in zip(chunk, made, strict=True):
                lat = np.stack(latents[at : at + 3 * mixes]).reshape(mixes, 3, *latents[at].shape)
                at += 3 * mixes
                description = record.get("description", "")
                meta = {
                    "id": record.get("id", ""),
                    "description": description,
                    "category": record.get("category", "unknown"),
                    "group": record.get("group", ""),
                    "spans": record.get("spans") or [],
                    "num_samples": int(len(record["audio"])),
                    "frames": int(lat.shape[2]),
                    "text_index": int(rows.get(description, -1)),
                    "source_index": int(i),
                    "mixes": [info for info, *_ in ms],
                }
                video = record.get("video")
                records.append(latent_shards.encode_record(meta, lat, dtype, video))
                entries.append(
                    {
                        k: meta[k]
                        for k in (
                            "id",
                            "description",
                            "category",
                            "group",
                            "num_samples",
                            "frames",
                            "text_index",
                        )
                    }
                )
                progress(1)
        latent_shards.write_array_record(path, records)
        return {
            "num_records": len(records),
            "bytes": sum(len(r) for r in records),
            "records": entries,
        }


class TextFeatures:
    """The frozen T5 over batches of descriptions, jitted over local devices."""

    def __init__(self, config, encoder=None):
        from flax import nnx

        if encoder is None:
            from samaudio_jax.text.factory import build_text_encoder

            encoder = build_text_encoder(config.text, rngs=nnx.Rngs(0))
        self.encoder = encoder
        self.devices, self.sh, self.state, self.fn = _replicated_jit(
            encoder, lambda e, ids, mask: e(ids, mask)
        )
        self.batch = 16 * len(self.devices)

    def features(self, texts: list[str]) -> list[np.ndarray]:
        import jax

        out = []
        for start in range(0, len(texts), self.batch):
            chunk = texts[start : start + self.batch]
            padded = chunk + [""] * (self.batch - len(chunk))
            ids, mask = self.encoder.tokenize(padded)
            ids, mask = np.asarray(ids, np.int32), np.asarray(mask, bool)
            feats = self.fn(self.state, jax.device_put(ids, self.sh), jax.device_put(mask, self.sh))
            feats = np.asarray(jax.device_get(feats), np.float32)
            out += [feats[i, : int(mask[i].sum())] for i in range(len(chunk))]
        return out

    def write_shard(self, path, descriptions, dtype, progress) -> dict:
        feats = self.features(list(descriptions))
        rows = [
            text_table.encode_row(d, f, text_dtype(dtype))
            for d, f in zip(descriptions, feats, strict=True)
        ]
        progress(len(rows))
        latent_shards.write_array_record(path, rows)
        return {
            "num_records": len(rows),
            "bytes": sum(len(r) for r in rows),
            "max_tokens": max(len(f) for f in feats),
        }
