"""`samaudio-jax nfe-sweep`: held-out SI-SDRi and time against the number of network
evaluations (NFE) for each ODE solver and time grid (eval/nfe_sweep.py).

  samaudio-jax nfe-sweep --checkpoint DIR --data DIR [--out DIR] [--num 100]
      [--solvers euler,midpoint,heun,rk4,tsit5,dopri5] [--nfe 1,2,4,8,16,32]
      [--schedules uniform,late] [--tolerances 1e-2,1e-3,1e-4]

writes OUT/nfe_sweep.json, nfe_sweep.md and nfe_sweep.png (default OUT: ./nfe_sweep). The
mixtures are those of `eval` with the same --data, --num and --seed.
"""

from __future__ import annotations

import os
import sys

from samaudio_jax.cli.args import add_model_and_data


def add_arguments(parser) -> None:
    add_model_and_data(parser)
    parser.add_argument("--out", default="nfe_sweep", help="output directory")
    parser.add_argument(
        "--num", "--num_mixtures", dest="num", type=int, default=100,
        help="number of held-out mixtures",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1234, help="mixture seed (as eval)")
    parser.add_argument("--step", type=int, default=None, help="a workdir's checkpoint step")
    parser.add_argument("--solvers", default="euler,midpoint,heun,rk4,tsit5,dopri5")
    parser.add_argument("--nfe", default="1,2,4,8,16,32", help="NFE of the fixed-step rows")
    parser.add_argument(
        "--schedules", default="uniform,late", help="time grids: uniform, late, early"
    )
    parser.add_argument(
        "--tolerances", default="1e-2,1e-3,1e-4", help="rtol = atol of the adaptive rows"
    )
    parser.add_argument("--batch", type=int, default=16, help="mixtures per separate() call")
    parser.add_argument("--t5_dir", default=None, help="T5 weights for a release dir")


def _list(text: str, convert, flag: str) -> list:
    try:
        return [convert(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected a comma-separated list, got {text!r}") from None


def run(args, overrides) -> int:
    from samaudio_jax.cli.config_loader import apply_overrides
    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.eval import nfe_sweep

    try:
        if args.num < 1:
            raise ValueError(f"--num: expected >= 1, got {args.num}")
        if args.batch < 1:
            raise ValueError(f"--batch: expected >= 1, got {args.batch}")
        settings = nfe_sweep.plan(
            _list(args.solvers, str, "--solvers"),
            _list(args.nfe, int, "--nfe"),
            _list(args.schedules, str, "--schedules"),
            _list(args.tolerances, float, "--tolerances"),
        )
        separator = ev.load_for_eval(args.checkpoint, t5_dir=args.t5_dir, step=args.step)
        apply_overrides(separator.config, overrides)
        mixtures = ev.heldout_mixtures(args.data, separator.config.data, args.num, args.seed)
        print(f"{len(settings)} settings on {len(mixtures)} held-out mixtures", flush=True)
        load_before = os.getloadavg()[0]  # the times are only as quiet as the machine
        result = nfe_sweep.run_sweep(
            separator,
            mixtures,
            settings,
            batch=args.batch,
            print_fn=lambda line: print(line, flush=True),
        )
        result["load_average_1min"] = [load_before, os.getloadavg()[0]]  # start, end
        result["checkpoint"] = str(args.checkpoint)
        result["step"] = separator.step
        result["data"] = str(args.data)
        result["mixture_seed"] = args.seed
        written = nfe_sweep.write_outputs(result, args.out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(nfe_sweep.format_markdown(result), flush=True)
    print("wrote " + ", ".join(written.values()), flush=True)
    return 0
