"""Kill-and-resume: SIGTERM and SIGKILL mid-run, then resume, reproduce the uninterrupted run;
a checkpoint whose save was cut short is ignored."""

import re
import shutil
import signal

import pytest
from train_testlib import subprocess_env, train_cli

from samaudio_jax.train.metrics import read_losses

RUN = ["--config.train.steps=60", "--config.train.checkpoint_every=4"]


def _run_until(workdir, pattern, sig, env):
    """Starts a run, sends `sig` once a progress line matches `pattern`, returns its output."""
    proc = train_cli(workdir, RUN, env)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=300)[0]
    return proc.returncode, "".join(seen) + rest


def _resume(workdir, env):
    proc = train_cli(workdir, RUN + ["--stop_after_steps=3"], env)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-4000:]
    resumed = re.search(r"resumed from .*/checkpoints/(\d+)", out)
    assert resumed, out[-4000:]
    return int(resumed.group(1))


def _assert_same_losses(workdir, reference, first, last):
    losses = read_losses(workdir)
    for step in range(first, last + 1):
        assert abs(losses[step] - reference[step]) <= 1e-6 * abs(reference[step]), (
            step,
            losses[step],
            reference[step],
        )


@pytest.mark.slow
def test_sigterm_and_sigkill_runs_resume_to_the_uninterrupted_losses(tmp_path):
    env = subprocess_env()
    ref = train_cli(tmp_path / "ref", ["--config.train.steps=24"], env)
    out = ref.communicate(timeout=600)[0]
    assert ref.returncode == 0, out[-4000:]
    reference = read_losses(tmp_path / "ref")
    assert sorted(reference) == list(range(1, 25))

    # SIGTERM: the run saves at the next step boundary and exits cleanly.
    code, out = _run_until(tmp_path / "term", r"^step 5/", signal.SIGTERM, env)
    assert code == 0, out[-4000:]
    saved = re.search(r"preempted: saved step (\d+)", out)
    assert saved, out[-4000:]
    p = int(saved.group(1))
    assert 5 <= p <= 20, out[-4000:]
    assert _resume(tmp_path / "term", env) == p
    _assert_same_losses(tmp_path / "term", reference, p + 1, p + 3)

    # SIGKILL: no chance to save; resume from the last complete checkpoint. A save that
    # was cut short (Orbax's temporary directory, half written) must be ignored.
    code, out = _run_until(tmp_path / "kill", r"^step 10/", signal.SIGKILL, env)
    assert code == -signal.SIGKILL, out[-4000:]
    ckpts = tmp_path / "kill" / "checkpoints"
    complete = sorted(int(d.name) for d in ckpts.iterdir() if d.name.isdigit())
    assert complete and complete[-1] <= 12, complete
    last = complete[-1]
    partial = ckpts / f"{last + 4}.orbax-checkpoint-tmp-1795750000000000"
    shutil.copytree(ckpts / str(last), partial)
    for f in (partial / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    assert _resume(tmp_path / "kill", env) == last
    _assert_same_losses(tmp_path / "kill", reference, last + 1, last + 3)
