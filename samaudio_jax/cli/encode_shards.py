"""`samaudio-jax encode-shards --data DIR --out DIR --config configs/X.py [--mixes K]`:
audio shards (or a manifest) -> latent shards that train without the codec or T5 in the step.

For every target record, K mixtures are drawn with the Grain pipeline's own mixing rules
(data.pipeline.MakeExample.mix_at: the config's data.min/max_sources, snr_db, target_rms_db,
groups, distinct descriptions) from the seed sequence (--seed, record index, mix): the whole
clip, not a crop; training crops whole latent frames. The frozen codec encodes mixture,
target and residual of each mix; the latents are stored as --dtype (float16 default,
bfloat16 or float32), with the record's spans, the mix's SNRs, sources and target activity,
and its video features. With config.text.kind == "t5" each distinct description's T5
features are stored once, in the dataset's text table (data.text_table).

Devices: the codec (and T5) run jitted with the batch split over this process's devices
(the weights replicated); with several processes (--coordinator_address ..., or a TPU pod's
environment) output shard j is made by process j mod P, so no example is encoded twice.
The batch per device is --batch_per_device, or (0) as many examples as half the device's
memory holds by XLA's memory analysis of the compiled encoder (4 where a device reports no
memory limit, e.g. the CPU).

Interrupted and restarted with the same arguments, it skips the shards whose sidecar
(`<shard>.json`, written after the shard's atomic rename) exists and redoes the rest; the
output is the same bytes as an uninterrupted run's. index.json is written last, by process
0, when every shard is done; until then the directory is not a dataset.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from samaudio_jax.data import latent_shards, text_table
from samaudio_jax.data.latent_shards import LatentDatasetError, shard_name
from samaudio_jax.paths import as_path

DEFAULT_EXAMPLES_PER_SHARD = 256
CPU_BATCH_PER_DEVICE = 4
LENGTH_BUCKET_FRAMES = 16  # waveforms of a batch are padded to a multiple of this many hops


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="audio shard directory or manifest")
    parser.add_argument("--out", required=True, help="latent dataset directory (local or gs://)")
    parser.add_argument("--config", required=True, help="experiment file, e.g. configs/small.py")
    parser.add_argument("--mixes", type=int, default=4, help="mixtures stored per target (K)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mixture draws")
    parser.add_argument(
        "--dtype", choices=latent_shards.LATENT_DTYPES, default="float16", help="storage dtype"
    )
    parser.add_argument("--examples_per_shard", type=int, default=DEFAULT_EXAMPLES_PER_SHARD)
    parser.add_argument(
        "--batch_per_device", type=int, default=0, help="0 = fill the device's memory"
    )
    parser.add_argument("--split", default="train", help="DIR/<split> when DIR holds splits")
    parser.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args, overrides) -> int:
    from samaudio_jax.parallel import distributed

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.data.manifest import ManifestError
    from samaudio_jax.data.pipeline import DatasetMismatchError
    from samaudio_jax.data.shards import AudioDecodeError, ShardError

    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"encode-shards: error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        summary = encode_dataset(
            config,
            args.data,
            args.out,
            mixes=args.mixes,
            seed=args.seed,
            dtype=args.dtype,
            examples_per_shard=args.examples_per_shard,
            batch_per_device=args.batch_per_device,
            split=args.split,
            progress=not args.no_progress,
        )
    except (
        LatentDatasetError,
        DatasetMismatchError,
        ShardError,
        AudioDecodeError,
        ManifestError,
        FileNotFoundError,
        ValueError,
    ) as e:
        print(f"encode-shards: error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"encode-shards: {summary}", flush=True)
    return 0


# -- the source ---------------------------------------------------------------------------


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


# -- the plan -----------------------------------------------------------------------------


def _params(config, source, mixes, seed, dtype, examples_per_shard) -> dict:
    """What the output depends on; a restart must see the same."""
    from samaudio_jax.data.pipeline import PipelineConfig

    mix_cfg = PipelineConfig.from_config(config.data)
    text = None
    if config.text.kind == "t5":
        text = {"kind": "t5", "t5_dir": str(config.text.t5_dir), "dtype": str(config.text.dtype)}
        text["max_length"] = int(config.text.max_length)
    return {
        "source": {"dir": str(source.directory), "num_records": len(source)},
        "mixes": int(mixes),
        "seed": int(seed),
        "latent_dtype": dtype,
        "examples_per_shard": int(examples_per_shard),
        "codec": {
            "kind": str(config.codec.kind),
            "sample_rate": int(config.codec.sample_rate),
            "hop_length": int(config.codec.hop_length),
            "latent_dim": int(config.codec.latent_dim),
            "checkpoint": str(config.codec.checkpoint),
            "latent_scale": str(config.codec.latent_scale),
        },
        "mixing": {
            "min_sources": mix_cfg.min_sources,
            "max_sources": mix_cfg.max_sources,
            "snr_db": list(mix_cfg.snr_db),
            "target_rms_db": mix_cfg.target_rms_db,
            "distinct_descriptions": mix_cfg.distinct_descriptions,
            "activity_threshold_db": mix_cfg.activity_threshold_db,
        },
        "text": text,
    }


def _first_difference(a, b, prefix="") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix[:-1]}: {a!r} then, {b!r} now"


def _check_or_write_params(out, params: dict, is_main: bool) -> None:
    from samaudio_jax.io_atomic import atomic_write_text

    path = out / "encode.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        diff = _first_difference(before, params)
        if diff:
            raise LatentDatasetError(
                f"{path}: this directory holds a run with other settings ({diff}); give a new "
                "--out or the same arguments"
            )
    elif is_main:
        atomic_write_text(path, json.dumps(params, indent=1, sort_keys=True))


class Summary:
    def __init__(self):
        self.examples = self.mixes = self.rows = self.shards_done = self.shards_skipped = 0
        self.seconds = 0.0
        self.out = ""

    def __str__(self) -> str:
        rate = self.examples / self.seconds if self.seconds else 0.0
        return (
            f"encoded {self.examples} examples x {self.mixes} mixes and {self.rows} text rows "
            f"in {self.shards_done} shard(s) ({self.shards_skipped} already done) in "
            f"{self.seconds:.1f} s ({rate:.2f} examples/s) -> {self.out}"
        )


def encode_dataset(
    config,
    data: str,
    out: str,
    *,
    mixes: int = 4,
    seed: int = 0,
    dtype: str = "float16",
    examples_per_shard: int = DEFAULT_EXAMPLES_PER_SHARD,
    batch_per_device: int = 0,
    split: str = "train",
    progress: bool = True,
    codec=None,
    text_encoder=None,
) -> Summary:
    """Encodes --data into the latent dataset `out` (see the module docstring); `codec` /
    `text_encoder` default to the config's."""
    import jax

    if mixes < 1:
        raise ValueError(f"--mixes: expected >= 1, got {mixes}")
    if examples_per_shard < 1:
        raise ValueError(f"--examples_per_shard: expected >= 1, got {examples_per_shard}")
    latent_shards.numpy_dtype(dtype)
    source = open_audio_source(data, split, config)
    if len(source) == 0:
        raise LatentDatasetError(f"{source.directory}: the dataset holds no records")
    out = as_path(out)
    summary = Summary()
    summary.out, summary.mixes = str(out), mixes
    pid, nproc = jax.process_index(), jax.process_count()
    params = _params(config, source, mixes, seed, dtype, examples_per_shard)
    out.mkdir(parents=True, exist_ok=True)
    if (out / latent_shards.INDEX_NAME).exists():
        _check_or_write_params(out, params, False)
        print(f"encode-shards: {out} is already complete", file=sys.stderr)
        return summary
    _check_or_write_params(out, params, pid == 0)

    descriptions = (
        text_table.distinct_descriptions(r.get("description", "") for r in source.records)
        if params["text"]
        else []
    )
    n = len(source)
    jobs = [("shard", j) for j in range(math.ceil(n / examples_per_shard))]
    jobs += [("text", j) for j in range(math.ceil(len(descriptions) / text_table.ROWS_PER_SHARD))]
    mine = jobs[pid::nproc]
    present = {p.name for p in out.iterdir()}
    todo = [job for job in mine if shard_name(*job) + ".json" not in present]
    summary.shards_skipped = len(mine) - len(todo)

    def job_size(job):
        kind, j = job
        if kind == "shard":
            return min(n, (j + 1) * examples_per_shard) - j * examples_per_shard
        return min(len(descriptions), (j + 1) * text_table.ROWS_PER_SHARD) - j * (
            text_table.ROWS_PER_SHARD
        )

    from tqdm import tqdm

    bar = tqdm(
        total=sum(job_size(job) for job in mine),
        initial=sum(job_size(job) for job in mine if job not in todo),
        desc=f"encode-shards (process {pid}/{nproc})" if nproc > 1 else "encode-shards",
        unit="ex",
        disable=not progress,
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    encoder = None
    rows = {d: i for i, d in enumerate(descriptions)}
    for job in todo:
        kind, j = job
        if kind == "shard":
            if encoder is None:
                encoder = _LatentEncoder(config, source, codec, batch_per_device)
            lo, hi = j * examples_per_shard, min(n, (j + 1) * examples_per_shard)
            entry = encoder.write_shard(
                out / shard_name(kind, j), range(lo, hi), mixes, seed, dtype, rows, bar.update
            )
            summary.examples += hi - lo
        else:
            lo = j * text_table.ROWS_PER_SHARD
            hi = min(len(descriptions), lo + text_table.ROWS_PER_SHARD)
            if text_encoder is None:
                text_encoder = _TextFeatures(config)
            entry = text_encoder.write_shard(
                out / shard_name(kind, j), descriptions[lo:hi], dtype, bar.update
            )
            summary.rows += hi - lo
        entry["encoded_by"] = pid
        from samaudio_jax.io_atomic import atomic_write_text

        # The sidecar, after the shard's rename: its presence means the shard is complete.
        atomic_write_text(out / (shard_name(kind, j) + ".json"), json.dumps(entry))
        summary.shards_done += 1
    bar.close()
    summary.seconds = time.perf_counter() - t0
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("encode-shards: every shard written")
    if pid == 0:
        _write_index(out, jobs, params, source, descriptions, dtype, mixes, config)
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("encode-shards: index written")
    return summary


def _write_index(out, jobs, params, source, descriptions, dtype, mixes, config) -> None:
    from samaudio_jax.io_atomic import atomic_write_text

    shards, text_shards, records = [], [], []
    max_tokens = 0
    for kind, j in jobs:
        name = shard_name(kind, j)
        sidecar = out / (name + ".json")
        if not sidecar.exists():
            raise LatentDatasetError(f"{sidecar}: missing after every process finished")
        entry = json.loads(sidecar.read_text(encoding="utf-8"))
        item = {"file": name, "num_records": entry["num_records"], "bytes": entry["bytes"]}
        if kind == "shard":
            records += [{**r, "shard": len(shards)} for r in entry["records"]]
            shards.append(item)
        else:
            max_tokens = max(max_tokens, entry["max_tokens"])
            text_shards.append(item)
    index = {
        "format": latent_shards.FORMAT,
        "latent_dtype": dtype,
        "mixes": mixes,
        "codec": {k: params["codec"][k] for k in ("kind", "sample_rate", "hop_length")}
        | {"latent_dim": params["codec"]["latent_dim"]},
        "sample_rate": int(source.sample_rate),
        "mixing": {**params["mixing"], "seed": params["seed"]},
        "num_records": len(records),
        "shards": shards,
        "records": records,
        "text_kind": str(config.text.kind),
        "text": None,
        "source": params["source"],
    }
    if params["text"]:
        index["text"] = {
            "dim": int(config.model.text_dim),
            "dtype": text_dtype(dtype),
            "num": len(descriptions),
            "max_tokens": max_tokens,
            "encoder": params["text"],
            "shards": text_shards,
        }
    if getattr(source, "video_dim", None) is not None:
        index["video"] = {
            "dim": int(source.video_dim),
            "dtype": latent_shards.VIDEO_DTYPE,
            "hop_length": int(source.video_hop_length),
        }
    atomic_write_text(out / latent_shards.INDEX_NAME, json.dumps(index))


def text_dtype(latent_dtype: str) -> str:
    """The table's dtype: the latents' (float32 stays float32)."""
    return latent_dtype


# -- the encoders -------------------------------------------------------------------------


def _local_mesh():
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.local_devices()), ("batch",))


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


class _LatentEncoder:
    """Mixes a shard's records and encodes them with the codec, jitted over local devices."""

    def __init__(self, config, source, codec, batch_per_device: int):
        import jax
        from flax import nnx
        from jax.sharding import NamedSharding, PartitionSpec

        from samaudio_jax.data.pipeline import MakeExample, PipelineConfig

        if codec is None:
            from samaudio_jax.codec import build_codec

            codec = build_codec(config.codec)
        self.config = config
        self.source = source
        self.mixer = MakeExample(source, PipelineConfig.from_config(config.data))
        self.hop = int(codec.hop_length)
        self.rate = int(source.sample_rate)
        mesh = _local_mesh()
        self.devices = list(mesh.devices.flat)
        self.batch_sh = NamedSharding(mesh, PartitionSpec("batch"))
        replicated = NamedSharding(mesh, PartitionSpec())
        graph, state = nnx.split(codec)
        self.state = jax.device_put(state, replicated)
        self.fn = jax.jit(
            lambda s, wav, n: nnx.merge(graph, s).encode(wav, n),
            in_shardings=(replicated, self.batch_sh, self.batch_sh),
            out_shardings=self.batch_sh,
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


class _TextFeatures:
    """The frozen T5 over batches of descriptions, jitted over local devices."""

    def __init__(self, config, encoder=None):
        import jax
        from flax import nnx
        from jax.sharding import NamedSharding, PartitionSpec

        if encoder is None:
            from samaudio_jax.text.factory import build_text_encoder

            encoder = build_text_encoder(config.text, rngs=nnx.Rngs(0))
        self.encoder = encoder
        mesh = _local_mesh()
        self.devices = list(mesh.devices.flat)
        self.sh = NamedSharding(mesh, PartitionSpec("batch"))
        replicated = NamedSharding(mesh, PartitionSpec())
        graph, state = nnx.split(encoder)
        self.state = jax.device_put(state, replicated)
        self.fn = jax.jit(
            lambda s, ids, mask: nnx.merge(graph, s)(ids, mask),
            in_shardings=(replicated, self.sh, self.sh),
            out_shardings=self.sh,
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


def main(argv: list[str] | None = None) -> int:
    """`python -m samaudio_jax.cli.encode_shards ...`: the command without the dispatcher."""
    from samaudio_jax.cli.args import run_standalone

    return run_standalone(sys.modules[__name__], "samaudio-jax encode-shards", argv)


if __name__ == "__main__":
    sys.exit(main())
