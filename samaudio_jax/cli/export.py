"""`samaudio-jax export`: a training workdir's checkpoint (or any source samaudio_jax.load
reads) -> config.json, checkpoint.pt and model.safetensors in the release's layout
(docs/export_layout.md), with every frozen part the workdir carries (codec, vision tower)."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument(
        "--workdir", required=True, help="training workdir (or a release/export dir, Hub id)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (latest)")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.load import load_bundle
    from samaudio_jax.checkpoint.release_dir import write_release_dir

    try:
        bundle = load_bundle(args.workdir, step=args.step)
        written = write_release_dir(bundle, args.out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {str(err).strip(chr(39))}", file=sys.stderr, flush=True)
        return 2
    step = "" if bundle.step is None else f"step {bundle.step}: "
    print(f"exported {step}" + ", ".join(written), flush=True)
    return 0
