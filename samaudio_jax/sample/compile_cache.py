"""JAX's persistent compilation cache for `separate`, so the few bucketed compilations it
needs are kept across processes.

JAX reads the cache folder only from its global config. `enable_compilation_cache` sets it
for the rest of the process (for an entry point that owns the process); `call_cache`
sets it for one call and restores JAX's config and cache state on exit, so that calling
`separate` from a library leaves the caller's JAX settings as it found them.
"""

from __future__ import annotations

import contextlib
import os

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from samaudio_jax.paths import as_path

DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "samaudio_jax", "xla"
)
_MIN_COMPILE_SECONDS = 1.0  # cache only compilations that take longer than this


def _cache_folder(cache_dir) -> str | None:
    """`"default"` -> $SAMAUDIO_JAX_CACHE_DIR or DEFAULT_CACHE_DIR; None, "" or "none" -> None;
    a folder (local or URL: JAX reads and writes it through etils.epath) is created."""
    if cache_dir == "default":
        cache_dir = os.environ.get("SAMAUDIO_JAX_CACHE_DIR") or DEFAULT_CACHE_DIR
    if not cache_dir or str(cache_dir).lower() == "none":
        return None
    path = as_path(cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return os.fspath(path)


def enable_compilation_cache(cache_dir: str | os.PathLike | None = "default") -> str | None:
    """Turns on JAX's persistent compilation cache in `cache_dir` for the rest of the
    process unless one is already set; returns the cache folder in use (None when off)."""
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = _cache_folder(cache_dir)
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    return folder


@contextlib.contextmanager
def call_cache(cache_dir: str | os.PathLike | None = "default"):
    """The persistent cache in `cache_dir` while the block runs (yields the folder, or None).

    A cache the caller has already set is used as it is and left alone. Otherwise the
    folder is set for the block and, on exit, JAX's two settings are put back and its cache
    object is dropped (reset_cache): JAX builds that object once from the folder, so without
    the reset the caller's later compilations would still be written into ours.
    """
    if jax.config.jax_compilation_cache_dir:
        yield jax.config.jax_compilation_cache_dir
        return
    folder = _cache_folder(cache_dir)
    if folder is None:
        yield None
        return
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    jax_cache.reset_cache()  # JAX may have looked for a cache before, when none was set
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    try:
        yield folder
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
        jax_cache.reset_cache()
