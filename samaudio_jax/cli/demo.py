"""`samaudio-jax demo`: the whole pipeline (data, train, eval, separation, export) on the
synthesiser's corpus, on your own files (--manifest/--test_manifest) or on shards you made
(--data DIR with train/ and test/); see samaudio_jax/demo.py."""

from __future__ import annotations

import logging
import sys

from samaudio_jax.demo import DEFAULT_EVAL_MIXTURES

SYNTH_CONFIG = "configs/demo.py"
REAL_CONFIG = "configs/demo_real.py"  # the recipe measured on real recordings


def add_arguments(parser) -> None:
    parser.add_argument("--workdir", required=True, help="data, checkpoints, results")
    parser.add_argument(
        "--config",
        default="",
        help=f"experiment file (default {SYNTH_CONFIG}; {REAL_CONFIG} with --manifest or --data)",
    )
    parser.add_argument(
        "--eval_mixtures", type=int, default=DEFAULT_EVAL_MIXTURES, help="held-out mixtures"
    )
    parser.add_argument("--manifest", default="", help="training files (JSONL or CSV manifest)")
    parser.add_argument(
        "--test_manifest", default="", help="held-out files (other recordings than --manifest)"
    )
    parser.add_argument("--data", default="", help="shards already made: DIR/train, DIR/test")
    parser.add_argument(
        "--distill",
        type=int,
        default=0,
        metavar="S",
        help="also distill a student that separates in S network evaluations: 1, 2 or 4 "
        "(0: off; docs/distillation.md)",
    )
    parser.add_argument(
        "--distill_train_steps", type=int, default=200, help="the student's training steps"
    )


def _check_args(args) -> str | None:
    if args.eval_mixtures < 1:
        return "--eval_mixtures: expected >= 1"
    if bool(args.manifest) != bool(args.test_manifest):
        return "--manifest and --test_manifest: give both (training and held-out files)"
    if args.manifest and args.data:
        return "--data: give either --data or --manifest/--test_manifest, not both"
    if getattr(args, "distill", 0) < 0 or getattr(args, "distill_train_steps", 1) < 1:
        return "--distill / --distill_train_steps: expected >= 0 / >= 1"
    return None


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.orbax_io import ConfigMismatchError
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.demo import run_demo
    from samaudio_jax.train.loop import TrainingDivergedError

    logging.getLogger("absl").setLevel(logging.WARNING)
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    own_data = bool(args.manifest or args.data)
    # A bad config is a ConfigError: one line, exit status 2 (cli/args.py).
    config = load_config(args.config or (REAL_CONFIG if own_data else SYNTH_CONFIG), overrides)
    try:
        run_demo(
            config,
            args.workdir,
            eval_mixtures=args.eval_mixtures,
            manifests=(args.manifest, args.test_manifest) if args.manifest else None,
            data_dir=args.data or None,
            distill_student_steps=getattr(args, "distill", 0),
            distill_train_steps=getattr(args, "distill_train_steps", 200),
        )
    except (TrainingDivergedError, ConfigMismatchError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
