"""Examples/s of the Grain data pipeline: 10 s segments at 48 kHz, target + 1 other source.

Writes a synthetic corpus of 12 s clips, then times batches with 0 and 2 mp_prefetch
workers (median over several timed runs; the 0-worker figure is the reference for the
ratio). Prints the per-process batch size; compare with the examples one training step
consumes.

    PYTHONPATH=. python bench/data_pipeline.py [--batch-size 8] [--runs 3] [--batches 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from samaudio_jax.data.pipeline import PipelineConfig, make_dataset
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import write_synth_corpus


def examples_per_second(reader, workers, batch_size, runs, batches) -> tuple[float, list]:
    config = PipelineConfig(
        sample_rate=48000,
        segment_seconds=10.0,
        min_sources=1,
        max_sources=1,
        worker_count=workers,
    )
    it = iter(make_dataset(reader, config, batch_size=batch_size, seed=0))
    next(it)  # start-up (worker spawn, first reads) is not timed
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * batch_size / (time.perf_counter() - start))
    del it
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_synth_corpus(
            Path(tmp),
            seed=0,
            sample_rate=48000,
            clip_seconds=12.0,
            train_per_class=8,
            test_per_class=0,
        )
        reader = ShardReader(Path(tmp) / "train")
        results = {
            w: examples_per_second(reader, w, args.batch_size, args.runs, args.batches)
            for w in args.workers
        }
    reference = results[args.workers[0]][0]
    print(f"segment 10 s @ 48 kHz, 2 sources, batch size {args.batch_size} (per process)")
    print(f"{'workers':>8} {'examples/s':>11} {'batches/s':>10} {'vs ' + str(args.workers[0]):>7}")
    for w, (median, _) in results.items():
        print(
            f"{w:>8} {median:>11.1f} {median / args.batch_size:>10.2f} {median / reference:>7.2f}"
        )


if __name__ == "__main__":
    main()
