"""Experiment files: `configs/X.py` (its get_config()) or, big_vision style,
`configs/X.py:ARG` (its get_config("ARG")), local or behind a URL (e.g. the config.py that
`import` writes into a gs:// workdir: its text is read and run as a module whose __file__
is the URL). `sibling_config` lets one experiment file start from another beside it.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections

from samaudio_jax.config_checks import ConfigError, ConfigFileError
from samaudio_jax.paths import as_path, is_url


def split_spec(spec: str | os.PathLike) -> tuple[str, str | None]:
    """ "configs/sam.py:large" -> ("configs/sam.py", "large"); a path alone -> (path, None)."""
    text = os.fspath(spec)
    head, colon, tail = text.rpartition(":")
    if colon and head.endswith(".py") and tail and "/" not in tail:
        return head, tail
    return text, None


def load_config_file(spec: str | os.PathLike) -> ml_collections.ConfigDict:
    """Runs the experiment file of `spec` and returns its get_config() (or get_config(ARG))."""
    file, arg = split_spec(spec)
    path = as_path(file)
    if not path.is_file():
        raise ConfigFileError(f"--config: no such config file: {path}")
    name = f"_samaudio_config_{path.stem}"
    if is_url(path):
        module = types.ModuleType(name)
        module.__file__ = str(path)
        exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    else:
        loader_spec = importlib.util.spec_from_file_location(name, os.fspath(path))
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config: {path} defines no get_config()")
    if arg is None:
        return module.get_config()
    try:
        return module.get_config(arg)
    except (TypeError, ValueError) as err:  # no argument taken, or an unknown variant
        raise ConfigError(f"--config {os.fspath(spec)}: {err}") from None


def sibling_config(file: str | os.PathLike, spec: str) -> ml_collections.ConfigDict:
    """The config of `spec` ("name.py" or "name.py:ARG") in the folder of `file` (an
    experiment file's __file__), so the two may be loaded from anywhere."""
    return load_config_file(f"{as_path(file).parent}/{spec}")
