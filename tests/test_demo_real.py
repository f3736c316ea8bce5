"""The demo on real sounds (a small corpus from bench/real_corpus.py: espeak-ng speech,
fluidsynth instruments and drums, freedesktop chimes; .ci/run installs those packages):
- `demo --manifest/--test_manifest` runs every stage (shards, latent scale, train, eval
  with the IRM ceiling and crop policy, separation wavs + PNG, export re-imported
  identically), and `train` with the same config on the demo's shards is the same
  training: identical losses and the same latent scale;
- through the CLI, a SIGKILL mid-training and a rerun of the same command finish the job,
  resuming from the last checkpoint, with the latent scale kept."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from samaudio_jax.cli.config_loader import load_config
from tests.train_testlib import REPO, subprocess_env

pytestmark = pytest.mark.slow

TINY = [
    "--config.model.dim=32",
    "--config.model.num_layers=1",
    "--config.model.num_heads=4",
    "--config.model.text_dim=16",
    "--config.text.small.dim=16",
    "--config.train.global_batch_size=4",
    "--config.train.log_every=1",
    "--config.train.warmup_steps=1",
    "--config.sample.steps=2",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not (shutil.which("espeak-ng") and shutil.which("fluidsynth")):
        if os.environ.get("CI") == "true":  # .ci/run installs them: missing there is a failure
            pytest.fail("espeak-ng / fluidsynth missing in CI (see .ci/run)")
        pytest.skip("espeak-ng / fluidsynth not installed (apt-get install, see .ci/run)")
    spec = importlib.util.spec_from_file_location("real_corpus", REPO / "bench/real_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("real")
    module.build(str(out), small=True)
    return out


def _losses(workdir) -> dict[int, float]:
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_demo_on_manifests_runs_every_stage_and_train_is_the_same_training(corpus, tmp_path):
    from samaudio_jax.demo import run_demo
    from samaudio_jax.train.loop import train

    work = tmp_path / "demo"
    config = load_config("configs/demo_real.py", TINY + ["--config.train.steps=3"])
    lines = []
    state = run_demo(
        config,
        work,
        eval_mixtures=4,
        print_fn=lines.append,
        manifests=(str(corpus / "train.jsonl"), str(corpus / "test.jsonl")),
    )
    for split in ("train", "test"):
        assert (work / "data" / split / "index.json").is_file()
    for name in ("mixture.wav", "target.wav", "residual.wav", "spectrograms.png"):
        assert (work / "separation" / name).is_file(), name
    assert (work / "export" / "config.json").is_file()
    assert state["export"]["reimport_max_abs_diff"] == 0.0
    evaluated = json.loads((work / "eval.json").read_text())
    assert evaluated["crop_policy"]["min_active_fraction"] == config.data.min_active_fraction
    assert np.isfinite(evaluated["overall"]["irm_si_sdri_median"])
    assert all("irm_si_sdri_median" in s for s in evaluated["per_category"].values())
    text = "\n".join(map(str, lines))
    assert "IRM SI-SDRi med" in text and "latent scale: measured" in text

    # `train` on the demo's shards with the same config file: the same training.
    alone = tmp_path / "train"
    config = load_config("configs/demo_real.py", TINY + ["--config.train.steps=3"])
    config.data.dir = str(work / "data")
    train(config, str(alone), print_fn=lambda *a, **k: None)
    np.testing.assert_array_equal(
        np.load(alone / "latent_scale.npy"), np.load(work / "latent_scale.npy")
    )
    demo_losses, train_losses = _losses(work), _losses(alone)
    assert sorted(demo_losses) == [1, 2, 3]
    assert demo_losses == train_losses

    # `demo --data` on those shards: the same job without the shard stage.
    again = tmp_path / "demo_data"
    config = load_config("configs/demo_real.py", TINY + ["--config.train.steps=3"])
    state = run_demo(
        config, again, eval_mixtures=4, print_fn=lambda *a: None, data_dir=str(work / "data")
    )
    assert _losses(again) == demo_losses
    assert state["export"]["reimport_max_abs_diff"] == 0.0
    assert json.loads((again / "eval.json").read_text())["overall"] == evaluated["overall"]


def _demo_cmd(corpus, work, steps):
    return [
        sys.executable,
        "-m",
        "samaudio_jax",
        "demo",
        "--workdir",
        str(work),
        "--manifest",
        str(corpus / "train.jsonl"),
        "--test_manifest",
        str(corpus / "test.jsonl"),
        "--eval_mixtures",
        "3",
        *TINY,
        f"--config.train.steps={steps}",
        "--config.train.checkpoint_every=5",
    ]


def test_demo_cli_resumes_after_sigkill_mid_training(corpus, tmp_path):
    work = tmp_path / "w"
    env = subprocess_env()
    steps = 100
    proc = subprocess.Popen(
        _demo_cmd(corpus, work, steps),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while not (work / "checkpoints" / "10").is_dir():
            assert proc.poll() is None, "the demo ended before training reached step 10"
            assert time.monotonic() < deadline, "no checkpoint at step 10 in time"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    scale = (work / "latent_scale.npy").read_bytes()
    mtime = os.stat(work / "latent_scale.npy").st_mtime_ns
    killed_at = max(_losses(work))
    assert 10 <= killed_at < steps, killed_at  # killed mid-training

    again = subprocess.run(
        _demo_cmd(corpus, work, steps), cwd=REPO, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resumed from" in again.stdout
    state = json.loads((work / "demo_state.json").read_text())
    assert state["train"]["final_step"] == steps and state["train"]["resumed_from"] >= 10
    assert state["export"]["reimport_max_abs_diff"] == 0.0
    assert (work / "latent_scale.npy").read_bytes() == scale
    assert os.stat(work / "latent_scale.npy").st_mtime_ns == mtime  # read, not re-measured
    for name in ("eval.json", "separation/spectrograms.png", "export/model.safetensors"):
        assert (work / name).is_file(), name
