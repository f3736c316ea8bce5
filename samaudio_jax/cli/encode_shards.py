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

import dataclasses
import json
import math
import sys
import time

from samaudio_jax.data import latent_shards, text_table
from samaudio_jax.data.latent_encoders import (  # noqa: F401  (_LatentEncoder: bench/)
    LatentEncoder as _LatentEncoder,
)
from samaudio_jax.data.latent_encoders import TextFeatures as _TextFeatures
from samaudio_jax.data.latent_encoders import open_audio_source, text_dtype
from samaudio_jax.data.latent_shards import LatentDatasetError, shard_name
from samaudio_jax.paths import as_path

DEFAULT_EXAMPLES_PER_SHARD = 256


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

    config = load_config(args.config, overrides)  # a ConfigError is one line (cli/args.py)
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
    plan = _Plan(config, source, out, mixes, seed, dtype, examples_per_shard, descriptions)
    jobs = [("shard", j) for j in range(math.ceil(len(source) / examples_per_shard))]
    jobs += [("text", j) for j in range(math.ceil(len(descriptions) / text_table.ROWS_PER_SHARD))]
    mine = jobs[pid::nproc]
    present = {p.name for p in out.iterdir()}
    todo = [job for job in mine if shard_name(*job) + ".json" not in present]
    summary.shards_skipped = len(mine) - len(todo)

    from tqdm import tqdm

    bar = tqdm(
        total=sum(len(plan.rows(job)) for job in mine),
        initial=sum(len(plan.rows(job)) for job in mine if job not in todo),
        desc=f"encode-shards (process {pid}/{nproc})" if nproc > 1 else "encode-shards",
        unit="ex",
        disable=not progress,
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    _encode_jobs(plan, todo, summary, bar.update, codec, text_encoder, batch_per_device, pid)
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


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What encode_dataset writes: the source's records in shards of `examples_per_shard`
    (job ("shard", j)) and the distinct descriptions' T5 features (job ("text", j))."""

    config: object
    source: object
    out: object
    mixes: int
    seed: int
    dtype: str
    examples_per_shard: int
    descriptions: list[str]

    def rows(self, job) -> range:
        """The records (shard job) or descriptions (text job) that `job` writes."""
        kind, j = job
        if kind == "shard":
            per, total = self.examples_per_shard, len(self.source)
        else:
            per, total = text_table.ROWS_PER_SHARD, len(self.descriptions)
        return range(j * per, min(total, (j + 1) * per))


def _encode_jobs(plan, todo, summary, update, codec, text_encoder, batch_per_device, pid):
    """Writes each job's shard, then its sidecar; the codec and T5 are built when needed."""
    from samaudio_jax.io_atomic import atomic_write_text

    encoder = None
    index_of = {d: i for i, d in enumerate(plan.descriptions)}
    for job in todo:
        kind, j = job
        rows, path = plan.rows(job), plan.out / shard_name(kind, j)
        if kind == "shard":
            if encoder is None:
                encoder = _LatentEncoder(plan.config, plan.source, codec, batch_per_device)
            entry = encoder.write_shard(
                path, rows, plan.mixes, plan.seed, plan.dtype, index_of, update
            )
            summary.examples += len(rows)
        else:
            if text_encoder is None:
                text_encoder = _TextFeatures(plan.config)
            texts = plan.descriptions[rows.start : rows.stop]
            entry = text_encoder.write_shard(path, texts, plan.dtype, update)
            summary.rows += len(rows)
        entry["encoded_by"] = pid
        # The sidecar, after the shard's rename: its presence means the shard is complete.
        atomic_write_text(plan.out / (shard_name(kind, j) + ".json"), json.dumps(entry))
        summary.shards_done += 1


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


def main(argv: list[str] | None = None) -> int:
    """`python -m samaudio_jax.cli.encode_shards ...`: the command without the dispatcher."""
    from samaudio_jax.cli.args import run_standalone

    return run_standalone(sys.modules[__name__], "samaudio-jax encode-shards", argv)


if __name__ == "__main__":
    sys.exit(main())
