"""Shared helpers for the training tests: the tiny config at tiny lengths, CLI subprocesses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

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


def shared_cache_dir() -> pathlib.Path:
    """One XLA compilation cache for all training-test subprocesses (same programs recur)."""
    return pathlib.Path(tempfile.gettempdir()) / f"samaudio-jax-train-test-xla-cache-{os.getuid()}"


def subprocess_env(cache_dir=None, devices: int | None = None) -> dict:
    """Env for a CPU JAX subprocess: repo on the path, shared compile cache, fast CPU compiles."""
    cache_dir = cache_dir or shared_cache_dir()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    flags = ["--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
    if devices:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def train_cli(workdir, extra: list[str], env: dict, **popen_kw) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "samaudio_jax.cli.train", "--config", str(REPO / "configs" / "tiny.py")]
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
