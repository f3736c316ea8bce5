"""Replacing a shard directory only once its replacement is complete.

    with staged_dataset(out_dir, overwrite=True) as new_dir:
        ...write a complete dataset (index.json last) into new_dir...
    # out_dir now holds it; the old dataset was moved aside, then deleted

The new dataset is written beside the old, in `<out>.new-<id>`. When the block ends without
an exception: the old dataset is moved aside (`<out>.old-<id>`), the new one moved in, and
only then the old one deleted. An exception (or a kill) before that leaves `<out>` as it
was; the staging directory is removed on an exception, and after a kill it lacks index.json,
so no reader takes it for a dataset.

Local disk: the moves are directory renames (atomic). A bucket has no directories, so a
dataset is moved object by object, in the order that never shows a dataset as complete
when it is not: the shards are copied first, then index.json moved (the copy is now
complete), then the source's shards deleted. All through `paths.as_path` (etils.epath).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator

from samaudio_jax.paths import Path, PathLike, as_path, is_url

INDEX_NAME = "index.json"
# What a shard directory may hold: index.json, shards, and their temporary names.
_DATASET_FILE = re.compile(r"index\.json(\.tmp)?|shard-\d{5}\.array_record(\.tmp)?")


class StagingError(ValueError):
    """The output directory cannot be replaced safely; the message names it."""


def _foreign_entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not _DATASET_FILE.fullmatch(p.name))


def leftovers(out: Path) -> list[Path]:
    """`<out>.new-*` / `<out>.old-*` siblings left by an interrupted run."""
    pattern = re.compile(re.escape(out.name) + r"\.(new|old)-[0-9a-z-]+")
    if not out.parent.exists():
        return []
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name))


def _move_dataset(src: Path, dst: Path) -> None:
    """Moves the shard directory `src` to `dst` (which must not exist)."""
    if not is_url(src):
        src.rename(dst)
        return
    names = [p.name for p in src.iterdir()]
    data = [n for n in names if n != INDEX_NAME]
    for name in data:
        (src / name).copy(dst / name)
    if INDEX_NAME in names:  # copy + delete: what a bucket's rename is anyway
        (src / INDEX_NAME).copy(dst / INDEX_NAME)
        (src / INDEX_NAME).unlink()
    for name in data:
        (src / name).unlink()


def _remove(directory: Path) -> None:
    if directory.exists():
        directory.rmtree()


@contextlib.contextmanager
def staged_dataset(
    out_dir: PathLike, overwrite: bool = False, log: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Yields a fresh staging directory beside `out_dir`; moves it to `out_dir` when the block
    ends without an exception (see the module docstring). Refuses, before anything is
    written, an `out_dir` holding a dataset (without `overwrite`) or files that are not part
    of one (they would be deleted with the old dataset)."""
    out = as_path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise StagingError(f"{out}: exists and is not a directory")
        foreign = _foreign_entries(out)
        if foreign:
            raise StagingError(
                f"{out}: holds {foreign[0]!r}, which is not part of a shard dataset; "
                "give an empty or new directory (or a shard directory) as the output"
            )
        if (out / INDEX_NAME).exists() and not overwrite:
            raise StagingError(f"{out}: already holds a dataset ({INDEX_NAME}); pass --overwrite")
    if log is not None:
        for old in leftovers(out):
            log(f"note: {old} was left by an interrupted run; delete it when not needed")
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    new = out.parent / f"{out.name}.new-{token}"
    if not is_url(new):  # a bucket has no directories to make
        new.mkdir(parents=True, exist_ok=False)
    try:
        yield new
    except BaseException:
        _remove(new)
        raise
    if not (new / INDEX_NAME).exists():
        _remove(new)
        raise StagingError(f"{out}: the new dataset has no {INDEX_NAME}; nothing was replaced")
    aside = out.parent / f"{out.name}.old-{token}"
    had_old = out.exists() and any(True for _ in out.iterdir())
    if had_old:
        _move_dataset(out, aside)
    elif out.exists() and not is_url(out):
        out.rmdir()  # empty: the rename below needs its name free
    _move_dataset(new, out)
    if had_old:
        _remove(aside)
    if is_url(new):
        _remove(new)  # a bucket "directory" may keep a placeholder object
