"""Examples/s of the Grain data pipeline (10 s segments at 48 kHz, target + 1 other source)
against the examples/s one real jitted train step consumes on this machine.

Writes a synthetic corpus of 12 s clips, then times batches of --batch-size with 0 and 2
mp_prefetch workers (median over --runs timed runs of --batches batches each). Then times
the real jitted train step (samaudio_jax.train.step) of each --configs network on a latent
batch of the same B examples x 250 frames (10 s at 48 kHz through the release codec, hop
1920), median of --step-runs steps after a compiling warm-up. The codec's encoding is not
part of that step (latent batch, no codec weights), so the step's examples/s is an upper
bound on what training consumes and the headroom (pipeline ex/s / step ex/s) a lower bound.
Default (tiny) takes about a minute; --configs tiny demo adds configs/demo.py's network.

    PYTHONPATH=. python bench/data_pipeline.py [--batch-size 8] [--runs 3] [--batches 4]
        [--configs tiny demo] [--step-runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import TrainStepBench, machine_facts, median_seconds  # noqa: E402
from samaudio_jax.cli.config_loader import load_config  # noqa: E402
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset  # noqa: E402
from samaudio_jax.data.shards import ShardReader  # noqa: E402
from samaudio_jax.data.synth import write_synth_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE, SEGMENT_SECONDS = 48000, 10.0
RELEASE_HOP = 1920  # DACVAE: 48 kHz / 1920 = 25 latent frames per second
STEP_FRAMES = round(SAMPLE_RATE * SEGMENT_SECONDS / RELEASE_HOP)


def examples_per_second(reader, workers, batch_size, runs, batches) -> tuple[float, list]:
    config = PipelineConfig(
        sample_rate=SAMPLE_RATE,
        segment_seconds=SEGMENT_SECONDS,
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


def step_seconds(name: str, batch_size: int, runs: int) -> float:
    """Median seconds of the real jitted train step of configs/<name>.py's network (f32, no
    remat) on a latent batch of batch_size x STEP_FRAMES frames."""
    config = load_config(REPO / "configs" / f"{name}.py")
    config.model.dtype = "float32"  # CPU: f32, as bench/train_step.py
    config.model.remat_policy = "none"
    bench = TrainStepBench.build(config, batch_size, STEP_FRAMES)
    return median_seconds(bench.run, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--configs", nargs="+", default=["tiny"], help="train-step networks")
    parser.add_argument("--step-runs", type=int, default=5)
    args = parser.parse_args()
    b = args.batch_size
    # The pipeline first: its worker processes start before JAX holds any threads.
    with tempfile.TemporaryDirectory() as tmp:
        write_synth_corpus(
            Path(tmp),
            seed=0,
            sample_rate=SAMPLE_RATE,
            clip_seconds=12.0,
            train_per_class=8,
            test_per_class=0,
        )
        reader = ShardReader(Path(tmp) / "train")
        pipeline = {
            w: examples_per_second(reader, w, b, args.runs, args.batches)[0] for w in args.workers
        }
    steps = {name: step_seconds(name, b, args.step_runs) for name in args.configs}
    print(machine_facts())
    print(
        f"pipeline: {SEGMENT_SECONDS:g} s @ {SAMPLE_RATE // 1000} kHz, 2 sources, batch {b} "
        f"(per process), median of {args.runs} x {args.batches} batches"
    )
    print(
        f"train step: batch {b} x {STEP_FRAMES} latent frames, f32, codec not timed, "
        f"median of {args.step_runs} steps"
    )
    print(
        "| workers | pipeline ex/s | train step | step s | step ex/s | headroom (pipeline / step) |"
    )
    print("|---|---|---|---|---|---|")
    for w, rate in pipeline.items():
        for name, seconds in steps.items():
            print(
                f"| {w} | {rate:.1f} | {name} | {seconds:.3f} | {b / seconds:.1f} "
                f"| {rate * seconds / b:.2f} |"
            )
    for name, seconds in steps.items():
        ratios = ", ".join(f"{w} workers {rate * seconds / b:.2f}" for w, rate in pipeline.items())
        print(f"ratio pipeline / {name} train step (examples/s): {ratios}")


if __name__ == "__main__":
    main()
