"""`samaudio-jax import`: a release(-layout) directory -> a step-0 Orbax checkpoint in
--workdir that `train` fine-tunes (resumes) from and `separate` / `eval` load.

The workdir also gets config.json (the experiment config) and, for the frames codec,
latent_scale.npy; train with the same config (the checkpoint's config check says which
field differs otherwise)."""

from __future__ import annotations

import pathlib
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="release-layout directory")
    parser.add_argument("--workdir", required=True, help="new training workdir")
    parser.add_argument("--t5_dir", default=None, help="T5 weights (release text encoder)")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.export import import_separator
    from samaudio_jax.checkpoint.workdir import write_step0_checkpoint
    from samaudio_jax.sample.loading import save_separator

    work = pathlib.Path(args.workdir).absolute()
    try:
        separator = import_separator(args.checkpoint, work, args.t5_dir)
        write_step0_checkpoint(separator, work)
        save_separator(work / "separator", separator)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(
        f"imported {args.checkpoint} -> {work}/checkpoints/0 and {work}/separator "
        f"(config: {work}/separator/config.json)",
        flush=True,
    )
    return 0
