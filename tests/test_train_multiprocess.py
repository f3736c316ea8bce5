"""Two processes on localhost (jax.distributed) train like one process, and a SIGTERM to one
of them stops both at the same step."""

import re
import signal

import portpicker
import pytest
from train_testlib import subprocess_env, train_cli

from samaudio_jax.train.metrics import read_losses

STEPS = ["--config.train.steps=3", "--config.train.global_batch_size=8"]


@pytest.mark.slow
def test_two_processes_match_the_single_process_losses(tmp_path):
    port = portpicker.pick_unused_port()
    env = subprocess_env(devices=4)
    workers = [
        train_cli(
            tmp_path / "multi",
            STEPS
            + [
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            env,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-4000:]
    assert "step 3/3" in outputs[0]
    single = train_cli(tmp_path / "single", STEPS, subprocess_env(devices=8))
    out = single.communicate(timeout=600)[0]
    assert single.returncode == 0, out[-4000:]
    multi, ref = read_losses(tmp_path / "multi"), read_losses(tmp_path / "single")
    assert sorted(ref) == [1, 2, 3] and sorted(multi) == [1, 2, 3]
    for step in ref:
        assert abs(multi[step] - ref[step]) <= 1e-5 * abs(ref[step]), (step, multi, ref)
    # Both processes wrote their part of the final checkpoint, data iterator state included.
    data = tmp_path / "multi" / "checkpoints" / "3" / "data"
    assert sorted(p.name for p in data.glob("process_*.json")) == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]


def _two_processes(workdir, extra, env):
    port = portpicker.pick_unused_port()
    coord = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
    return [train_cli(workdir, extra + coord + [f"--process_id={i}"], env) for i in range(2)]


PREEMPT = ["--config.train.steps=200", "--config.train.global_batch_size=8"]
PREEMPT += ["--config.train.checkpoint_every=1000"]


@pytest.mark.slow
@pytest.mark.parametrize("service", [True, False], ids=["jax-preemption-service", "allgather"])
def test_sigterm_to_one_process_saves_the_same_step_on_both_and_resumes_exactly(tmp_path, service):
    """SIGTERM to process 1 only: both processes agree on one step, save it, exit 0, and the
    resumed run continues with the uninterrupted run's losses. With JAX's preemption service
    (the default) the service's own SIGTERM handler spreads the notice; without it the loop
    all-gathers each process's flag."""
    env = subprocess_env(devices=2)
    if not service:
        env["JAX_ENABLE_PREEMPTION_SERVICE"] = "false"
    work = tmp_path / "preempted"
    workers = _two_processes(work, PREEMPT, env)
    head = []
    for line in workers[0].stdout:
        head.append(line)
        if re.match(r"^step 2/", line):
            workers[1].send_signal(signal.SIGTERM)
            break
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    outputs[0] = "".join(head) + outputs[0]
    saved = []
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-4000:]
        found = re.findall(r"^preempted: saved step (\d+);", out, re.M)
        assert len(found) == 1, out[-4000:]
        saved.append(int(found[0]))
    assert saved[0] == saved[1] and 2 <= saved[0] < 200, saved
    p = saved[0]
    assert sorted(int(d.name) for d in (work / "checkpoints").iterdir()) == [p]
    data = work / "checkpoints" / str(p) / "data"
    assert len(list(data.glob("process_*.json"))) == 2
    assert not (work / "train.lock").exists()
    if not service:
        return

    resumed = _two_processes(work, PREEMPT + ["--stop_after_steps=3"], env)
    outs = [w.communicate(timeout=600)[0] for w in resumed]
    for w, out in zip(resumed, outs):
        assert w.returncode == 0, out[-4000:]
    assert re.search(rf"resumed from .*/checkpoints/{p}\n", outs[0]), outs[0][-4000:]
    ref = train_cli(
        tmp_path / "ref", PREEMPT + [f"--stop_after_steps={p + 3}"], subprocess_env(devices=4)
    )
    out = ref.communicate(timeout=600)[0]
    assert ref.returncode == 0, out[-4000:]
    losses, reference = read_losses(work), read_losses(tmp_path / "ref")
    assert sorted(reference) == list(range(1, p + 4))
    for step in range(1, p + 4):
        assert abs(losses[step] - reference[step]) <= 1e-5 * abs(reference[step]), (
            step,
            losses,
            reference,
        )
