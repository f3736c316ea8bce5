"""`samaudio-jax import`: a release, an export or a Hub id -> a fresh training workdir whose
step-0 Orbax checkpoint holds the source's weights (train fine-tunes from it; separate, eval
and export load it) and whose frozen/ holds its codec and vision tower (checkpoint/workdir.py).

The workdir also gets config.json (the imported experiment config) and config.py (it, for
`train --config`). Fine-tune with
    samaudio-jax train --config WORKDIR/config.py --workdir WORKDIR [--config.train.steps=N]
(`train --init_from SOURCE --config YOURS` does both in one step, with your config).
"""

from __future__ import annotations

import sys

from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path


def add_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="release or export directory, or a Hub id"
    )
    parser.add_argument("--workdir", required=True, help="new training workdir")
    parser.add_argument("--t5_dir", default=None, help="T5 weights (release text encoder)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag, commit)")


def run(args, overrides) -> int:
    from samaudio_jax.checkpoint.load import load_bundle
    from samaudio_jax.train.init_from import init_workdir

    work = as_path(args.workdir)
    if (work / "checkpoints").is_dir() and any((work / "checkpoints").iterdir()):
        print(f"error: --workdir: {work} already holds checkpoints", file=sys.stderr)
        return 2
    try:
        source = load_bundle(
            args.checkpoint, revision=getattr(args, "revision", None), t5_dir=args.t5_dir
        )
        config = init_workdir(source.config, work, source)
        atomic_write_text(work / "config.json", config.to_json(indent=2))
        _write_config_py(work)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {str(err).strip(chr(39))}", file=sys.stderr, flush=True)
        return 2
    print(
        f"imported {args.checkpoint} -> {work}/checkpoints/0 (frozen parts in {work}/frozen); "
        f"fine-tune with: samaudio-jax train --config {work}/config.py --workdir {work}",
        flush=True,
    )
    return 0


CONFIG_PY = '''"""The config of the checkpoint imported here (written by `samaudio-jax import`)."""

from samaudio_jax.checkpoint.bundle import config_from_json
from samaudio_jax.paths import as_path


def get_config():
    return config_from_json(as_path(__file__).parent / "config.json")
'''


def _write_config_py(work: Path) -> None:
    atomic_write_text(work / "config.py", CONFIG_PY)
