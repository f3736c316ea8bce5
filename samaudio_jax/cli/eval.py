"""`samaudio-jax eval`: SI-SDR, SI-SDRi and SDR on deterministic held-out mixtures."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training workdir (latest checkpoint, EMA when present), a separator dir or an "
        "export/release dir",
    )
    parser.add_argument("--data", required=True, help="directory with a test/ shard split")
    parser.add_argument("--num", type=int, default=100, help="number of held-out mixtures")
    parser.add_argument("--seed", type=int, default=1234, help="mixture seed")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--t5_dir", default=None, help="T5 weights for a release dir")


def run(args, overrides) -> int:
    from samaudio_jax.cli.config_loader import apply_overrides
    from samaudio_jax.eval import evaluate as ev

    try:
        if args.num < 1:
            raise ValueError(f"--num: expected >= 1, got {args.num}")
        separator = ev.load_for_eval(args.checkpoint, t5_dir=args.t5_dir)
        apply_overrides(separator.config, overrides)
        mixtures = ev.heldout_mixtures(args.data, separator.config.data, args.num, args.seed)
        summary = ev.evaluate(separator, mixtures, crop=ev.crop_policy(separator.config.data))
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(ev.format_table(summary), flush=True)
    if args.json:
        ev.write_json(args.json, summary)
        print(f"wrote {args.json}")
    return 0
