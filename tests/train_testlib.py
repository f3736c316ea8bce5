"""Shared helpers for the training tests: the tiny config at tiny lengths, CLI subprocesses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# configs/tiny.py with 256-sample (16-frame) segments and per-step logging.
TINY = [
    "--config.data.segment_seconds=0.032",
    "--config.train.synthetic_data=true",
    "--config.train.log_every=1",
    "--config.train.warmup_steps=2",
]


def tiny_config(extra: list[str] | None = None):
    from samaudio_jax.cli.config_loader import load_config

    return load_config(REPO / "configs" / "tiny.py", TINY + (extra or []))


def subprocess_env(cache_dir, devices: int | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def train_cli(workdir, extra: list[str], env: dict, **popen_kw) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "samaudio_jax", "train", "--config", str(REPO / "configs" / "tiny.py")]
    cmd += ["--workdir", str(workdir), *TINY, *extra]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen_kw,
    )
