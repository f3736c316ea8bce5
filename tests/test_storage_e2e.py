"""A training run whose data, workdir and compilation cache live in a gs:// bucket on a real
GCS server, end to end: synth shards into the bucket, train on them, SIGKILL after a
checkpoint exists, resume to the end, export to
the bucket, import and load it back; nothing is written to local disk (cwd, HOME and TMPDIR
of every command stay empty, and no `gs:` folder appears) and every output is an object in
the bucket."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from train_testlib import REPO, TINY, subprocess_env

STEPS = 24


SYNTH = [
    "--config.data.synth.train_per_class=2",
    "--config.data.synth.test_per_class=1",
    "--config.data.synth.classes=('tone', 'noise')",
    "--config.data.synth.clip_seconds=0.25",
]


def data_flags(bucket: str) -> list[str]:
    """The run reads the Grain pipeline over the shards that `synth` wrote to the bucket."""
    return [f"--config.data.dir={bucket}/data", "--config.train.synthetic_data=false"]


def _cli(args, env, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "samaudio_jax.cli.main", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _run(args, env, cwd) -> str:
    proc = _cli(args, env, cwd)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-4000:]
    return out


def _committed_steps(server, bucket) -> list[int]:
    """Checkpoint steps whose save finished: on GCS Orbax marks them with commit_success."""
    names = server.list_objects(bucket, "run/checkpoints/")
    found = (re.fullmatch(r"run/checkpoints/(\d+)/commit_success\.txt", n) for n in names)
    return sorted(int(m.group(1)) for m in found if m)


@pytest.mark.slow
def test_train_kill_resume_export_import_all_in_the_bucket(gcs_server, gcs_bucket, tmp_path):
    local = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for d in local.values():
        d.mkdir()
    env = subprocess_env()
    env.update(gcs_server.env)
    env.update(
        HOME=str(local["home"]),
        TMPDIR=str(local["tmp"]),
        PYTHONDONTWRITEBYTECODE="1",
        JAX_COMPILATION_CACHE_DIR=f"{gcs_bucket}/xla-cache",
    )
    env.pop("XDG_CACHE_HOME", None)
    # The corpus: ArrayRecord shards written straight into the bucket.
    tiny = ["--config", str(REPO / "configs" / "tiny.py")]
    out = _run(["synth", "--out", f"{gcs_bucket}/data", *tiny, *SYNTH], env, local["cwd"])
    assert "synth train: wrote 4 examples" in out, out[-4000:]

    run = f"{gcs_bucket}/run"
    train = [
        "train",
        "--config",
        str(REPO / "configs" / "tiny.py"),
        "--workdir",
        run,
        *TINY,
        *data_flags(gcs_bucket),
        f"--config.train.steps={STEPS}",
        "--config.train.checkpoint_every=4",
    ]

    # Train; SIGKILL as soon as a checkpoint is complete in the bucket.
    proc = _cli(train, env, local["cwd"])
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step ") and _committed_steps(gcs_server, gcs_bucket):
            proc.send_signal(signal.SIGKILL)
            break
    out = "".join(seen) + proc.communicate(timeout=300)[0]
    assert proc.returncode == -signal.SIGKILL, out[-4000:]
    killed_at = int(re.findall(r"^step (\d+)/", out, re.M)[-1])
    assert killed_at < STEPS, out[-4000:]
    saved = _committed_steps(gcs_server, gcs_bucket)

    # Resume from the newest complete checkpoint in the bucket and finish.
    out = _run(train, env, local["cwd"])
    resumed = re.search(r"resumed from (\S+)/checkpoints/(\d+)", out)
    assert resumed and resumed.group(1) == run, out[-4000:]
    assert int(resumed.group(2)) == saved[-1], (out[-4000:], saved)
    assert f"done: step {STEPS}" in out, out[-4000:]
    assert _committed_steps(gcs_server, gcs_bucket)[-1] == STEPS

    # Export from the bucket to the bucket, then import the export into a new gs:// workdir.
    out = _run(["export", "--workdir", run, "--out", f"{gcs_bucket}/export"], env, local["cwd"])
    assert f"exported step {STEPS}" in out, out[-4000:]
    _run(
        ["import", "--checkpoint", f"{gcs_bucket}/export", "--workdir", f"{gcs_bucket}/imported"],
        env,
        local["cwd"],
    )

    names = gcs_server.list_objects(gcs_bucket)
    for name in (
        "data/train/index.json",
        f"run/checkpoints/{STEPS}/data/process_0-of-1.json",
        "run/metrics.jsonl",
        "export/config.json",
        "export/checkpoint.pt",
        "export/model.safetensors",
        "imported/checkpoints/0/commit_success.txt",
        "imported/frozen/latent_scale.npy",
        "imported/frozen/dtypes.json",
        "imported/config.json",
        "imported/config.py",
    ):
        assert name in names, (name, names)
    assert any(n.startswith("run/tb/events.out.tfevents.") for n in names), names
    assert any(n.startswith("xla-cache/") for n in names), names

    # Nothing reached local disk: no file in cwd, HOME or TMPDIR, no `gs:` folder anywhere.
    for name, d in local.items():
        assert not [str(p) for p in d.rglob("*")], f"{name}: {list(d.rglob('*'))}"
    assert not (REPO / "gs:").exists()

    # Load it back (in this process, from the bucket): the imported separator and the export
    # hold the trained weights, and the log covers every step.
    from samaudio_jax.checkpoint.bundle import flat_params
    from samaudio_jax.model.factory import flow_state_dict
    from samaudio_jax.sample.loading import load
    from samaudio_jax.state_dict_io import read_state_dict
    from samaudio_jax.train.metrics import read_losses

    assert sorted(read_losses(run)) == list(range(1, STEPS + 1))
    separator = load(f"{gcs_bucket}/imported")
    state, file = read_state_dict(f"{gcs_bucket}/export")
    assert file == f"{gcs_bucket}/export/model.safetensors"
    exported = flow_state_dict(separator.model, separator.config.model)
    assert exported.keys() == {k for k in state if k in exported}
    for k, v in exported.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(state[k]), err_msg=k)
    assert any(np.abs(np.asarray(v)).max() > 0 for v in flat_params(separator.model).values())
    assert os.listdir(local["cwd"]) == []
