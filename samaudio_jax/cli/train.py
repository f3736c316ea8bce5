"""`samaudio-jax train`: train a config, resuming from --workdir when it holds checkpoints.

Multi-host: on a TPU pod every worker runs the same command (JAX finds the coordinator in
the environment); elsewhere pass --coordinator_address, --num_processes and --process_id.
"""

from __future__ import annotations

import logging
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="experiment file, e.g. configs/tiny.py")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl, tb/")
    parser.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    parser.add_argument(
        "--stop_after_steps",
        type=int,
        default=None,
        help="stop (with a checkpoint) after this many steps of this invocation",
    )
    parser.add_argument(
        "--force_unlock",
        action="store_true",
        help="take WORKDIR/train.lock even if another host's trainer holds it (only once "
        "that trainer is known to be gone; a dead process on this host is detected alone)",
    )
    parser.add_argument(
        "--allow_config_change",
        default="",
        help="comma-separated config fields or sections (e.g. data.dir,layout) that may "
        "differ from the checkpoint's when resuming",
    )


def run(args, overrides) -> int:
    from samaudio_jax.parallel import distributed

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)

    from samaudio_jax.checkpoint.lock import WorkdirLockedError
    from samaudio_jax.checkpoint.orbax_io import ConfigMismatchError, parse_allow_list
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.data.pipeline import DatasetMismatchError
    from samaudio_jax.train.loop import TrainingDivergedError, train

    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, overrides)
        allow = parse_allow_list(args.allow_config_change)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        result = train(
            config,
            args.workdir,
            stop_after_steps=args.stop_after_steps,
            force_unlock=args.force_unlock,
            allow_config_change=allow,
        )
    except (
        TrainingDivergedError,
        ConfigMismatchError,
        DatasetMismatchError,
        WorkdirLockedError,
    ) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except FileNotFoundError as e:  # a weights/config file the config names (text.t5_dir, ...)
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"done: step {result.final_step}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m samaudio_jax.cli.train ...`: the same command without the dispatcher."""
    from samaudio_jax.cli.args import run_standalone

    return run_standalone(sys.modules[__name__], "samaudio-jax train", argv)


if __name__ == "__main__":
    sys.exit(main())
