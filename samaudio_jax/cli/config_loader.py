"""Loads an experiment file from configs/ and applies `--config.a.b=value` overrides."""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import ml_collections

from samaudio_jax.config_checks import ConfigError, ConfigFileError, validate_config


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
    """Imports `path` and returns its get_config()."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigFileError(f"--config: no such config file: {path}")
    spec = importlib.util.spec_from_file_location(f"_samaudio_config_{path.stem}", path)
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
            return float(raw)
        except ValueError:
            raise ValueError(f"--config.{name}: expected a number, got {raw!r}") from None
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"--config.{name}: expected a tuple like (1, 2), got {raw!r}"
            ) from None
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
    path: str | pathlib.Path, overrides: list[str] | None = None
) -> ml_collections.ConfigDict:
    return apply_overrides(load_config_file(path), overrides or [])
