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
        "--init_from",
        default=None,
        help="start a fresh workdir from these weights: a release or export directory, a "
        "training workdir or a Hugging Face Hub id (e.g. facebook/sam-audio-large); the "
        "flow network trains, the codec / vision tower / T5 they carry stay frozen",
    )
    parser.add_argument(
        "--allow_random_codec",
        action="store_true",
        help="train even though config.codec is a DACVAE without weights (codec.checkpoint "
        "empty, no --init_from): its latents are random, so the run is meaningless",
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
        _check_codec(config, args)
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
            init_from=args.init_from,
        )
    except (
        TrainingDivergedError,
        ConfigMismatchError,
        DatasetMismatchError,
        WorkdirLockedError,
    ) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except (FileNotFoundError, KeyError) as e:  # a weights/config file the config names
        print(f"error: {e}", file=sys.stderr, flush=True)  # (text.t5_dir, ...), a bad source
        return 2
    except ValueError as e:  # --init_from: an unreadable source or a mismatched architecture
        if args.init_from is None:
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"done: step {result.final_step}", flush=True)
    return 0


def _check_codec(config, args) -> None:
    """A DACVAE without weights makes the run meaningless: refuse unless asked (one line)."""
    from samaudio_jax.checkpoint.workdir import with_frozen_parts

    codec = with_frozen_parts(config, args.workdir).codec
    if codec.kind != "dacvae" or codec.checkpoint or args.init_from or args.allow_random_codec:
        return
    raise ValueError(
        "config.codec.checkpoint: empty, so the DACVAE codec would be RANDOM and the run "
        "meaningless; set --config.codec.checkpoint=RELEASE_DIR, start from weights with "
        "--init_from, or pass --allow_random_codec"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m samaudio_jax.cli.train ...`: the same command without the dispatcher."""
    from samaudio_jax.cli.args import run_standalone

    return run_standalone(sys.modules[__name__], "samaudio-jax train", argv)


if __name__ == "__main__":
    sys.exit(main())
