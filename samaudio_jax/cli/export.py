"""`samaudio-jax export`: a training workdir's latest checkpoint -> config.json,
checkpoint.pt and model.safetensors in the release's layout (docs/export_layout.md)."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--workdir", required=True, help="training workdir (checkpoints/)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (latest)")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.export import export_separator
    from samaudio_jax.checkpoint.workdir import separator_from_workdir

    try:
        separator, step = separator_from_workdir(args.workdir, args.step)
        written = export_separator(separator, args.out)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(f"exported step {step}: " + ", ".join(written), flush=True)
    return 0
