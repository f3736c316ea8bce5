"""One writer per workdir: the train lock refuses a second trainer naming the holder, takes
over a dead process's lock with a warning, needs --force_unlock for another host's; readers
(export) beside a running trainer never break its saves."""

import json
import socket
import subprocess
import sys

import pytest
from train_testlib import PYTHON, REPO, subprocess_env, tiny_config, train_cli

from samaudio_jax.checkpoint.lock import LOCK_NAME, WorkdirLock, WorkdirLockedError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_lock_on_a_held_workdir_is_refused_naming_the_holder(tmp_path):
    first = WorkdirLock(tmp_path).acquire()
    holder = json.loads((tmp_path / LOCK_NAME).read_text())
    assert holder["host"] == socket.gethostname() and isinstance(holder["pid"], int)
    with pytest.raises(WorkdirLockedError) as info:
        WorkdirLock(tmp_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert f"pid {holder['pid']}" in message and holder["start_time"] in message
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    WorkdirLock(tmp_path).acquire().release()


def test_a_stale_lock_of_a_dead_process_is_named_and_taken_over(tmp_path):
    pid = _dead_pid()
    stale = {"host": socket.gethostname(), "pid": pid, "start_time": "2020-01-01T00:00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    warnings = []
    lock = WorkdirLock(tmp_path, warn=warnings.append).acquire()
    assert len(warnings) == 1 and f"pid {pid}" in warnings[0] and "stale" in warnings[0]
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.token
    lock.release()


def test_another_hosts_lock_needs_force_unlock_and_release_keeps_a_foreign_lock(tmp_path):
    other = {"host": "tpu-worker-7", "pid": 4242, "start_time": "2030-05-01T10:00:00+00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(
        WorkdirLockedError, match=r"'tpu-worker-7', pid 4242, started 2030.*--force_unlock"
    ):
        WorkdirLock(tmp_path).acquire()
    warnings = []
    lock = WorkdirLock(tmp_path, force=True, warn=warnings.append).acquire()
    assert "tpu-worker-7" in warnings[0]
    # Someone else's lock written over ours is not removed by our release.
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "tpu-worker-7"


def _export(workdir, out, env):
    cmd = [PYTHON, "-m", "samaudio_jax", "export", "--workdir", str(workdir), "--out", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
def test_second_trainer_refuses_and_exports_beside_a_trainer_never_break_its_saves(tmp_path):
    env = subprocess_env()
    run = ["--config.train.steps=40", "--config.train.checkpoint_every=1"]
    run += ["--config.train.keep_checkpoints=1000"]
    work = tmp_path / "w"
    trainer = train_cli(work, run, env)
    for line in trainer.stdout:
        if line.startswith("step 1/"):
            break
    second = train_cli(work, run, env)
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 1, out[-3000:]
    assert f"pid {trainer.pid}" in out and "in use by another trainer" in out, out[-3000:]
    assert "Traceback" not in out

    exports = []
    while trainer.poll() is None:
        result = _export(work, tmp_path / f"export{len(exports)}", env)
        exports.append(result)
        assert result.returncode == 0, result.stderr[-3000:]
    rest = trainer.communicate(timeout=300)[0]
    assert trainer.returncode == 0, rest[-3000:]
    assert "done: step 40" in rest
    assert exports, "the trainer finished before any export ran"

    from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    config = tiny_config(run)
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    ckpt = TrainCheckpointer(work / "checkpoints", config, read_only=True)
    try:
        assert ckpt.all_steps() == list(range(1, 41))
        for step in ckpt.all_steps():
            state, _ = ckpt.restore(step, setup.abstract_state)
            assert int(state["step"]) == step
    finally:
        ckpt.close()
    assert not (work / LOCK_NAME).exists()
