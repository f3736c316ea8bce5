"""Frames/s of the PE-Core vision tower on CPU: ours (NNX, jitted) against timm's
vit_pe_core model (torch, run in the vision venv as a subprocess), same random weights.

Mid-size default: 112 px (8x8 patches of 14), width 384, 6 layers, 6 heads, 8 pool heads.
Prints the median over --runs timed runs after one warm-up (compilation excluded), timm with
1 torch thread and with all cores, and the ratio ours / the faster timm. The vision venv: SAMAUDIO_VISION_PYTHON or /work/venv-vision/bin/python.

    PYTHONPATH=. python bench/vision.py [--frames 8] [--runs 5] [--image 112] [--width 384]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, time_runs  # noqa: E402
from samaudio_jax.vision.factory import load_vision_part  # noqa: E402
from samaudio_jax.vision.features import FrameEncoder  # noqa: E402
from samaudio_jax.vision.pe import PEConfig  # noqa: E402
from tests.vision_reference import random_visual_state, run_timm, vision_python  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", type=int, default=112)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=6)
    args = parser.parse_args()
    python = vision_python()
    if python is None:
        print(
            "vision venv not found (SAMAUDIO_VISION_PYTHON or /work/venv-vision)", file=sys.stderr
        )
        return 1
    cfg = PEConfig(
        image_size=args.image,
        patch_size=14,
        width=args.width,
        layers=args.layers,
        heads=args.heads,
        pool_heads=8,
        output_dim=args.width,
    )
    state = random_visual_state(cfg, seed=0)
    frames = np.random.default_rng(1).uniform(
        -1, 1, (args.frames, cfg.image_size, cfg.image_size, 3)
    )
    frames = frames.astype(np.float32)

    encoder = FrameEncoder(load_vision_part(state, base=cfg).tower, batch_size=args.frames)
    t_ours, out = time_runs(lambda: jax.block_until_ready(encoder(frames)), args.runs)
    # torch's intra-op threads: all cores can lose badly to one on a shared machine; both run
    timm_runs = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        theirs = run_timm(python, cfg, state, frames, repeats=args.runs, threads=threads)
        timm_runs[threads] = float(np.median(theirs["seconds"]))
    err = float(np.max(np.abs(np.asarray(out) - theirs["normalized"])))
    t_timm = min(timm_runs.values())
    print(machine_facts())
    print(
        f"PE tower {cfg.image_size}px/{cfg.patch_size}, width {cfg.width}, {cfg.layers} layers, "
        f"{args.frames} frames, float32"
    )
    print(f"{'impl':<12}{'median s':>10}{'frames/s':>10}")
    print(f"{'ours (jax)':<12}{t_ours:>10.4f}{args.frames / t_ours:>10.1f}")
    for threads, t in timm_runs.items():
        name = f"timm {threads}thr"
        print(f"{name:<12}{t:>10.4f}{args.frames / t:>10.1f}")
    print(f"ratio ours/best timm (time): {t_ours / t_timm:.2f}   max |diff|: {err:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
