"""`samaudio-jax demo`: the whole pipeline on a synthetic corpus (see samaudio_jax/demo.py)."""

from __future__ import annotations

import logging
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--workdir", required=True, help="data, checkpoints, results")
    parser.add_argument("--config", default="configs/demo.py", help="experiment file")
    parser.add_argument("--eval_mixtures", type=int, default=100, help="held-out mixtures")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.orbax_io import ConfigMismatchError
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.demo import run_demo
    from samaudio_jax.train.loop import TrainingDivergedError

    logging.getLogger("absl").setLevel(logging.WARNING)
    if args.eval_mixtures < 1:
        print("error: --eval_mixtures: expected >= 1", file=sys.stderr)
        return 2
    config = load_config(args.config, overrides)
    try:
        run_demo(config, args.workdir, eval_mixtures=args.eval_mixtures)
    except (TrainingDivergedError, ConfigMismatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
