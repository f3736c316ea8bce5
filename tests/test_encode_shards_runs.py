"""encode-shards as a program: SIGKILLed mid-run and restarted it writes the same bytes as an
uninterrupted run; two processes x two devices encode disjoint examples covering the input;
`train` on its output runs the latent program."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import portpicker
import pytest
from train_testlib import REPO, subprocess_env

from samaudio_jax.data.latent_shards import LatentShardReader
from samaudio_jax.data.synth import write_synth_corpus

TINY = str(REPO / "configs" / "tiny.py")


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    write_synth_corpus(
        root, seed=1, train_per_class=6, test_per_class=1, sample_rate=8000, clip_seconds=0.25
    )
    return root / "train"


def _encode(audio, out, extra=(), env=None, **kw):
    cmd = [sys.executable, "-m", "samaudio_jax.cli.encode_shards", "--data", str(audio)]
    cmd += ["--out", str(out), "--config", TINY, "--mixes", "2", "--no_progress", *extra]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env or subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_sigkill_mid_run_then_restart_equals_an_uninterrupted_run(audio, tmp_path):
    args = ["--examples_per_shard", "1", "--batch_per_device", "1"]
    full = _encode(audio, tmp_path / "full", args)
    out = full.communicate(timeout=300)[0]
    assert full.returncode == 0, out

    killed = tmp_path / "killed"
    proc = _encode(audio, killed, args)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if killed.exists() and any(
            p.name.endswith(".json") and p.name != "encode.json" for p in killed.iterdir()
        ):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (killed / "index.json").exists(), "the run finished before the kill"
    done = [p for p in killed.iterdir() if p.name.endswith(".array_record.json")]
    assert 0 < len(done) < 30
    # Nothing half-written looks complete: every shard without .tmp is whole.
    for shard in killed.glob("shard-*.array_record"):
        from array_record.python.array_record_module import ArrayRecordReader

        reader = ArrayRecordReader(str(shard))
        assert reader.num_records() == 1
        reader.close()

    again = _encode(audio, killed, args)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    assert f"({len(done)} already done)" in out, out
    assert _files(killed) == _files(tmp_path / "full")
    assert len(LatentShardReader(killed)) == 30


@pytest.mark.slow  # two jax.distributed processes start and compile: ~25 s
def test_two_processes_with_two_devices_encode_disjoint_examples_covering_the_input(
    audio, tmp_path
):
    port = portpicker.pick_unused_port()
    env = subprocess_env(devices=2)
    coord = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
    args = ["--examples_per_shard", "4", "--batch_per_device", "2"]
    procs = [
        _encode(audio, tmp_path / "multi", args + coord + [f"--process_id={i}"], env)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    by_process = {0: [], 1: []}
    for sidecar in sorted((tmp_path / "multi").glob("shard-*.array_record.json")):
        entry = json.loads(sidecar.read_text())
        by_process[entry["encoded_by"]] += [r["id"] for r in entry["records"]]
    ids = by_process[0] + by_process[1]
    assert by_process[0] and by_process[1]
    assert len(ids) == len(set(ids)) == 30  # disjoint, and together the whole input
    single = _encode(audio, tmp_path / "single", args, subprocess_env(devices=1))
    assert single.communicate(timeout=300)[0] is not None and single.returncode == 0
    a, b = LatentShardReader(tmp_path / "multi"), LatentShardReader(tmp_path / "single")
    assert [r["id"] for r in a.records] == [r["id"] for r in b.records]
    for i in range(len(a)):
        np.testing.assert_allclose(
            a[i]["latents"].astype(np.float32), b[i]["latents"].astype(np.float32), atol=1e-3
        )


@pytest.mark.slow  # encode + a train-step compile in subprocesses: ~30 s
def test_train_on_latent_shards_runs_without_the_codec(audio, tmp_path):
    enc = _encode(audio, tmp_path / "lat")
    assert enc.communicate(timeout=300)[0] is not None and enc.returncode == 0
    cmd = [
        sys.executable,
        "-m",
        "samaudio_jax.cli.train",
        "--config",
        TINY,
        "--workdir",
        str(tmp_path / "run"),
        f"--config.data.dir={tmp_path / 'lat'}",
        "--config.data.segment_seconds=0.064",
        "--config.train.steps=2",
        "--config.train.log_every=1",
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "latent dataset: the step runs without the codec" in proc.stdout
    assert "step 2/2" in proc.stdout
