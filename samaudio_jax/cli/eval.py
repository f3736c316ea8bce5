"""`samaudio-jax eval`: SI-SDR, SI-SDRi and SDR on deterministic held-out mixtures.

The same mixtures, solver, steps and checkpoint step as a run's evaluation during training
(train.eval_num_mixtures, eval_seed, eval_solver, eval_ode_steps) give the values that run
logged: `eval --checkpoint WORKDIR --step S --num N --seed SEED --solver SOLVER --steps K`.
"""

from __future__ import annotations

import sys

from samaudio_jax.cli.args import add_model_and_data


def add_arguments(parser) -> None:
    add_model_and_data(parser)
    parser.add_argument(
        "--num", "--num_mixtures", dest="num", type=int, default=100,
        help="number of held-out mixtures",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1234, help="mixture seed")
    parser.add_argument(
        "--step",
        default=None,
        help="a workdir's checkpoint step to evaluate, or 'best' (WORKDIR/best.json, "
        "train.keep_best_by); default: the latest",
    )
    parser.add_argument("--solver", default=None, help="ODE solver (default: config.sample)")
    parser.add_argument(
        "--steps", type=int, default=None, help="ODE steps (default: config.sample.steps)"
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--t5_dir", default=None, help="T5 weights for a release dir")
    parser.add_argument(
        "--judge",
        default=None,
        help="a release-layout SAM Audio Judge directory: adds SAJ score columns",
    )


def _workdir_step(checkpoint, step: str | None) -> int | None:
    """--step as an int (None = latest); 'best' read from WORKDIR/best.json."""
    if step is None:
        return None
    from samaudio_jax.paths import as_path

    if step == "best":
        from samaudio_jax.train.validation import BEST_FILE, read_best

        best = read_best(checkpoint)
        if best is None:
            raise ValueError(
                f"--step: {as_path(checkpoint) / BEST_FILE} does not exist (the run kept no "
                "best checkpoint: train.keep_best_by)"
            )
        return int(best["step"])
    try:
        number = int(step)
    except ValueError:
        raise ValueError(f"--step: expected a step number or 'best', got {step!r}") from None
    where = as_path(checkpoint) / "checkpoints" / str(number)
    if (as_path(checkpoint) / "checkpoints").is_dir() and not where.is_dir():
        raise ValueError(f"--step: {where} does not exist")
    return number


def run(args, overrides) -> int:
    from samaudio_jax.cli.config_loader import apply_overrides
    from samaudio_jax.eval import evaluate as ev

    try:
        if args.num < 1:
            raise ValueError(f"--num: expected >= 1, got {args.num}")
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps: expected >= 1, got {args.steps}")
        if args.solver is not None:
            from samaudio_jax.sample.solvers import check_solver

            check_solver(args.solver, "--solver")
        step = _workdir_step(args.checkpoint, args.step)
        judge = None
        if args.judge is not None:  # loaded first: a bad Judge directory fails before separating
            from samaudio_jax.judge.scorer import JudgeScorer

            judge = JudgeScorer.load(args.judge)
        separator = ev.load_for_eval(args.checkpoint, t5_dir=args.t5_dir, step=step)
        apply_overrides(separator.config, overrides)
        if args.solver is not None:
            separator.config.sample.solver = args.solver
        if args.steps is not None:
            separator.config.sample.steps = args.steps
        mixtures = ev.heldout_mixtures(args.data, separator.config.data, args.num, args.seed)
        summary = ev.evaluate(
            separator, mixtures, crop=ev.crop_policy(separator.config.data), judge=judge
        )
    except (ValueError, FileNotFoundError, KeyError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {text}", file=sys.stderr, flush=True)
        return 2
    print(ev.format_table(summary), flush=True)
    if args.json:
        ev.write_json(args.json, summary)
        print(f"wrote {args.json}")
    return 0
