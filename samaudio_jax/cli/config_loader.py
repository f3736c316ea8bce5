"""Loads an experiment file from configs/ (`configs/X.py` or `configs/X.py:ARG`, local or
behind a URL: samaudio_jax/config_files.py) and applies `--config.a.b=value` overrides, then
checks the whole config (config_checks.validate_config).
"""

from __future__ import annotations

import ast
import math
import os

import ml_collections

from samaudio_jax.config_checks import RENAMED, ConfigError, renamed_message, validate_config
from samaudio_jax.config_files import load_config_file
from samaudio_jax.config_schema import default_config


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
            if key in RENAMED:
                raise ConfigError("--" + renamed_message(key))
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
    path: str | os.PathLike | None, overrides: list[str] | None = None
) -> ml_collections.ConfigDict:
    """The experiment file's config (the default config when `path` is empty) with the
    overrides applied, checked whole. Every error is a ConfigError, which each command
    reports as one line (cli/args.py)."""
    config = load_config_file(path) if path else default_config()
    return apply_overrides(config, overrides or [])
