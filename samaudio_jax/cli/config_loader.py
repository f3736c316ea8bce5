"""Loads an experiment file from configs/ and applies `--config.a.b=value` overrides.

The file may live behind a URL (e.g. the config.py that `import` writes into a gs://
workdir): its text is read and run as a module whose __file__ is the URL.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import types

import ml_collections

from samaudio_jax.config_checks import ConfigError, ConfigFileError, validate_config
from samaudio_jax.paths import as_path, is_url


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Imports `path` and returns its get_config()."""
    path = as_path(path)
    if not path.is_file():
        raise ConfigFileError(f"--config: no such config file: {path}")
    name = f"_samaudio_config_{path.stem}"
    if is_url(path):
        module = types.ModuleType(name)
        module.__file__ = str(path)
        exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    else:
        spec = importlib.util.spec_from_file_location(name, os.fspath(path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config: {path} defines no get_config()")
    return module.get_config()


def _coerce(raw: str, current, name: str):
    if isinstance(current, bool):
        low = raw.lower()
        if low in ("1", "true", "yes"):
            return True
        if low in ("0", "false", "no"):
            return False
        raise ValueError(f"--config.{name}: expected a boolean, got {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"--config.{name}: expected an integer, got {raw!r}") from None
    if isinstance(current, float):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"--config.{name}: expected a number, got {raw!r}") from None
        # No float field takes nan or inf (a rate, a weight, a duration, a level in dB):
        # a non-finite value would only surface later as a poisoned update or a hang.
        if not math.isfinite(value):
            raise ValueError(f"--config.{name}: expected a finite number, got {raw!r}")
        return value
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"--config.{name}: expected a value like {tuple(current)!r}, got {raw!r}"
            ) from None
        if not isinstance(value, (tuple, list)):
            raise ValueError(
                f"--config.{name}: expected a value like {tuple(current)!r}, got {raw!r}"
            )
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):
            raise ValueError(f"--config.{name}: expected finite numbers, got {raw!r}")
        return type(current)(value)
    return raw


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: list[str]
) -> ml_collections.ConfigDict:
    """Applies overrides of the form `--config.model.dim=128` (or `config.model.dim=128`)."""
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(
                f"unrecognised argument {item!r}; overrides look like --config.model.dim=128"
            )
        key, raw = text[len("config.") :].split("=", 1)
        parts = key.split(".")
        node = config
        for i, part in enumerate(parts[:-1]):
            if part not in node:
                raise ConfigError(
                    f"--config.{key}: no field {'.'.join(parts[: i + 1])!r} in the config"
                )
            node = node[part]
        leaf = parts[-1]
        if leaf not in node:
            raise ConfigError(f"--config.{key}: no field {key!r} in the config")
        current = node[leaf]
        try:
            node[leaf] = _coerce(raw, current, key)
        except (ValueError, TypeError) as err:
            # One error type for every bad override, so that each command reports it as
            # one line (cli/args.py) whatever _coerce found wrong.
            if isinstance(err, TypeError):  # e.g. tuple(5): a number where a pair belongs
                err = f"--config.{key}: expected a value like {current!r}, got {raw!r}"
            raise ConfigError(str(err)) from None
    validate_config(config)
    return config


def load_config(
    path: str | os.PathLike, overrides: list[str] | None = None
) -> ml_collections.ConfigDict:
    return apply_overrides(load_config_file(path), overrides or [])
