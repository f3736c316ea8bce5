"""Storage behind a URL (gs:// on the test GCS server): metrics and TensorBoard events,
atomic writes, and Orbax checkpoints reach the bucket, and nothing becomes a local folder."""

import os
import struct

import numpy as np
import pytest

from samaudio_jax.io_atomic import atomic_write, atomic_write_stream, atomic_write_text
from samaudio_jax.paths import as_path
from samaudio_jax.train import metrics as metrics_lib


def _events(data: bytes):
    """(tag, step, value) of each scalar in a TensorBoard events file, CRCs checked."""
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    out, i = [], 0
    while i < len(data):
        header = data[i : i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc32c(header)
        body = data[i + 12 : i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length : i + 16 + length])[0] == masked_crc32c(
            body
        )
        i += 16 + length
        event = event_pb2.Event.FromString(body)
        for v in event.summary.value:
            out.append((v.tag, event.step, v.simple_value))
    return out


def test_metrics_and_tensorboard_reach_the_bucket(gcs_server, gcs_bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = f"{gcs_bucket}/runs/a"
    writer = metrics_lib.MetricsWriter(run)
    writer.write(1, {"loss": 0.5, "grad_norm": 1.0})
    writer.write(2, {"loss": 0.25, "grad_norm": 1.0})
    writer.close()
    # A resumed run appends to the same metrics.jsonl and starts a second events file.
    writer = metrics_lib.MetricsWriter(run)
    writer.write(2, {"loss": 0.125, "grad_norm": 1.0})
    writer.close()
    assert metrics_lib.read_losses(run) == {1: 0.5, 2: 0.125}
    names = gcs_server.list_objects(gcs_bucket, "runs/a/")
    assert "runs/a/metrics.jsonl" in names
    events = [n for n in names if n.startswith("runs/a/tb/events.out.tfevents.")]
    assert events, names
    scalars = [s for n in events for s in _events(gcs_server.read_object(gcs_bucket, n))]
    assert ("train/loss", 1, 0.5) in scalars and ("train/loss", 2, 0.125) in scalars
    assert os.listdir(tmp_path) == []  # no ./gs: folder


def test_local_tensorboard_events_are_readable(tmp_path):
    writer = metrics_lib.MetricsWriter(tmp_path)
    writer.write(3, {"loss": 2.0})
    writer.close()
    (events,) = (tmp_path / "tb").iterdir()
    assert _events(events.read_bytes()) == [("train/loss", 3, 2.0)]
    assert metrics_lib.read_losses(tmp_path) == {3: 2.0}


class _Interrupted(Exception):
    pass


def test_atomic_writes_to_a_url(gcs_server, gcs_bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"{gcs_bucket}/out/summary.json"
    atomic_write_text(url, '{"old": 1}')

    def half_then_raise(f):
        f.write(b"half of the ")
        raise _Interrupted

    with pytest.raises(_Interrupted):
        atomic_write_stream(url, half_then_raise)
    assert gcs_server.read_object(gcs_bucket, "out/summary.json") == b'{"old": 1}'
    atomic_write_stream(f"{gcs_bucket}/out/x.npy", lambda f: np.save(f, np.arange(4)))
    with as_path(f"{gcs_bucket}/out/x.npy").open("rb") as f:
        np.testing.assert_array_equal(np.load(f), np.arange(4))
    with pytest.raises(ValueError, match=f"{gcs_bucket}/out/y.png: .*local file name"):
        atomic_write(f"{gcs_bucket}/out/y.png", lambda tmp: None)
    assert gcs_server.list_objects(gcs_bucket) == ["out/summary.json", "out/x.npy"]
    assert os.listdir(tmp_path) == []


def test_checkpointer_on_a_url(gcs_server, gcs_bucket, tmp_path, monkeypatch):
    from samaudio_jax.checkpoint import workdir as workdir_lib
    from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
    from tests.train_testlib import tiny_config

    monkeypatch.chdir(tmp_path)
    run = f"{gcs_bucket}/run"
    assert workdir_lib.latest_step(run) is None
    config = tiny_config(["--config.train.async_checkpointing=false"])
    state = {"step": np.int32(7), "params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    ckpt = TrainCheckpointer(f"{run}/checkpoints", config)
    assert str(ckpt.directory) == f"{run}/checkpoints"
    ckpt.save(7, state, force=True)
    ckpt.close()
    assert workdir_lib.latest_step(run) == 7
    ckpt = TrainCheckpointer(f"{run}/checkpoints", config)
    assert ckpt.latest_step() == 7
    ckpt.check_config(7)
    import jax

    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), state)
    restored, _ = ckpt.restore(7, abstract)
    ckpt.close()
    np.testing.assert_array_equal(restored["params"]["w"], state["params"]["w"])
    names = gcs_server.list_objects(gcs_bucket, "run/checkpoints/7/")
    assert any(n.startswith("run/checkpoints/7/state/") for n in names), names
    assert os.listdir(tmp_path) == []


def _cli(args, env, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "samaudio_jax.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _cli_env(gcs_server):
    from tests.train_testlib import subprocess_env

    env = subprocess_env()
    env.update(gcs_server.env)
    return env


def test_missing_bucket_is_named_in_one_line(gcs_server, tmp_path):
    out = _cli(
        ["export", "--workdir", "gs://no-such-bucket/run", "--out", str(tmp_path / "x")],
        _cli_env(gcs_server),
        tmp_path,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [
        "error: gs://no-such-bucket/run: bucket gs://no-such-bucket does not exist "
        "(or these credentials cannot see it)"
    ]
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_unreachable_server_is_named_in_one_line(gcs_server, tmp_path):
    env = _cli_env(gcs_server)
    env["STORAGE_EMULATOR_HOST"] = env["GCE_METADATA_HOST"]  # nothing listens there
    out = _cli(["export", "--workdir", "gs://b/run", "--out", "gs://b/out"], env, tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: gs://b/run: cannot reach gs://b (")
    assert "check the network and credentials" in line
    assert os.listdir(tmp_path) == []


def test_missing_backend_package_is_named(tmp_path):
    from samaudio_jax.paths import StorageBackendError, check_reachable

    pytest.importorskip("gcsfs")
    if __import__("importlib").util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    with pytest.raises(StorageBackendError, match=r"s3://b/run: .*pip install s3fs"):
        check_reachable("s3://b/run")
