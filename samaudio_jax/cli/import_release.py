"""`samaudio-jax import`: a release(-layout) directory -> a step-0 Orbax checkpoint in
--workdir that `train` fine-tunes (resumes) from and `separate` / `eval` load.

The workdir also gets separator/ (what `separate` loads), config.py (the imported config
for `train --config`) and, for the frames codec, latent_scale.npy. Fine-tune with
    samaudio-jax train --config WORKDIR/config.py --workdir WORKDIR [--config.train.steps=N]
"""

from __future__ import annotations

import sys

from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="release-layout directory")
    parser.add_argument("--workdir", required=True, help="new training workdir")
    parser.add_argument("--t5_dir", default=None, help="T5 weights (release text encoder)")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.export import import_separator
    from samaudio_jax.checkpoint.workdir import write_step0_checkpoint
    from samaudio_jax.sample.loading import save_separator

    work = as_path(args.workdir)
    if (work / "checkpoints").is_dir() and any((work / "checkpoints").iterdir()):
        print(f"error: --workdir: {work} already holds checkpoints", file=sys.stderr)
        return 2
    try:
        separator = import_separator(args.checkpoint, work, args.t5_dir)
        write_step0_checkpoint(separator, work)
        save_separator(work / "separator", separator)
        _write_config_py(work)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(
        f"imported {args.checkpoint} -> {work}/checkpoints/0 and {work}/separator; fine-tune "
        f"with: samaudio-jax train --config {work}/config.py --workdir {work}",
        flush=True,
    )
    return 0


CONFIG_PY = '''"""The config of the checkpoint imported here (written by `samaudio-jax import`)."""

from samaudio_jax.paths import as_path
from samaudio_jax.sample.loading import config_from_json


def get_config():
    return config_from_json(as_path(__file__).parent / "separator" / "config.json")
'''


def _write_config_py(work: Path) -> None:
    atomic_write_text(work / "config.py", CONFIG_PY)
