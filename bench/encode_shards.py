"""encode-shards throughput: examples/s of `encode_dataset` (mixing + batched jitted codec +
shard writes) against encoding the same mixtures' streams one clip at a time.

Real DACVAE sizes from the config (configs/small.py: the release's codec, random weights),
--seconds clips at the codec's rate, --mixes mixtures per target (each = 3 streams encoded).
The one-by-one reference calls the jitted encoder on (1, N) per stream, the way a script
without batching would, after a warm-up call (compilation excluded on both sides; the
encode-shards figure includes its one compilation, as a real run does).

    PYTHONPATH=. python bench/encode_shards.py [--examples 4] [--seconds 10] [--mixes 1]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts  # noqa: E402
from samaudio_jax.cli.config_loader import load_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small")
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--mixes", type=int, default=1)
    p.add_argument("--batch_per_device", type=int, default=4)
    args = p.parse_args()

    import jax

    from samaudio_jax.cli.encode_shards import _LatentEncoder, encode_dataset
    from samaudio_jax.codec import build_codec
    from samaudio_jax.codec.base import jit_method
    from samaudio_jax.data.shard_writer import ShardWriter
    from samaudio_jax.data.shards import ShardReader

    # T5 weights are not here: the text table is left out (text.kind small), codec only.
    config = load_config(REPO / "configs" / f"{args.config}.py", ["--config.text.kind=small"])
    rate = int(config.codec.sample_rate)
    n = int(args.seconds * rate)
    tmp = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    rng = np.random.default_rng(0)
    with ShardWriter(tmp / "audio", rate) as w:
        for i in range(args.examples):
            t = np.arange(n) / rate
            audio = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(n)
            w.add({"id": f"c{i}", "description": f"sound {i}", "category": "sfx"}, audio)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    encode_dataset(
        config,
        str(tmp / "audio"),
        str(tmp / "lat"),
        mixes=args.mixes,
        batch_per_device=args.batch_per_device,
        progress=False,
    )
    batched = time.perf_counter() - t0

    codec = build_codec(config.codec)
    encode = jit_method(codec, "encode")
    source = ShardReader(tmp / "audio")
    enc = _LatentEncoder(config, source, codec, 1)  # only its mixer is used
    waves = []
    for i in range(args.examples):
        _, made = enc.mixes_of(i, args.mixes, 0)
        waves += [w for _, *streams in made for w in streams]
    jax.block_until_ready(encode(waves[0][None]))  # compile outside the timing
    t0 = time.perf_counter()
    for w in waves:
        np.asarray(encode(w[None]))
    single = time.perf_counter() - t0
    load1 = os.getloadavg()

    print(machine_facts())
    print(
        f"config {args.config} codec {config.codec.kind} (random weights), {args.seconds:g} s "
        f"clips at {rate} Hz, {args.mixes} mix(es) x 3 streams per example, "
        f"batch {args.batch_per_device} per device; load average {load0[0]:.1f} before, "
        f"{load1[0]:.1f} after (loaded, shared machine)"
    )
    print("| method | examples | seconds | examples/s |")
    print("|---|---|---|---|")
    print(
        f"| encode-shards (mix + batched jit + write, incl. compile) | {args.examples} | "
        f"{batched:.1f} | {args.examples / batched:.3f} |"
    )
    print(
        f"| one clip at a time (jitted encode, compile excluded) | {args.examples} | "
        f"{single:.1f} | {args.examples / single:.3f} |"
    )


if __name__ == "__main__":
    main()
