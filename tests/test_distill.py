"""Few-step distillation (config.train.distill, train/distill.py) with the real trainer: the
student's loss falls, the student at its step count beats the teacher at the same step count
on held-out mixtures, its export says how it samples, and a distillation run killed with
SIGKILL resumes to the uninterrupted run's losses."""

from __future__ import annotations

import re
import signal

import jax
import numpy as np
import pytest
from distill_testlib import DISTILL_STEPS, STUDENT_STEPS, demo_cli, distill_runs
from train_testlib import tiny_config

from samaudio_jax.eval import evaluate as ev
from samaudio_jax.sample.loading import load, save
from samaudio_jax.train import distill
from samaudio_jax.train.metrics import read_losses

HELDOUT = 16  # as the nfe-sweep test: the same compiled euler program serves both


def _median_si_sdri(separator, mixtures, **kw) -> float:
    estimates = separator.separate(
        [m.mixture for m in mixtures], [m.description for m in mixtures],
        key=jax.random.key(0), max_batch=len(mixtures), **kw,
    ).target  # fmt: skip
    per_item = ev.score([m.target for m in mixtures], estimates, [m.mixture for m in mixtures])
    return float(np.median(per_item["si_sdri"]))


@pytest.mark.slow
def test_student_loss_falls_and_beats_the_teacher_at_its_step_count(tmp_path_factory, tmp_path):
    runs = distill_runs(tmp_path_factory)
    assert runs.uninterrupted_rc == 0, runs.uninterrupted_out[-4000:]
    assert "distill: teacher" in runs.uninterrupted_out, runs.uninterrupted_out[-4000:]
    by_step = read_losses(runs.uninterrupted)
    assert sorted(by_step) == list(range(1, DISTILL_STEPS + 1))
    losses = [by_step[s] for s in sorted(by_step)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses

    # The export carries the student's sampler: euler x STUDENT_STEPS.
    save(load(runs.uninterrupted), tmp_path / "export")
    student = load(tmp_path / "export")
    assert (student.config.sample.solver, student.config.sample.steps) == ("euler", STUDENT_STEPS)
    assert student.config.train.distill.student_steps == STUDENT_STEPS

    teacher = load(runs.teacher)
    mixtures = ev.heldout_mixtures(runs.data, teacher.config.data, HELDOUT)
    ours = _median_si_sdri(student, mixtures)  # its own defaults from the export
    theirs = _median_si_sdri(teacher, mixtures, solver="euler", steps=STUDENT_STEPS)
    assert ours > theirs, (ours, theirs)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--config.train.distill.teacher_steps=3"], r"teacher_steps: 3 must be a multiple"),
        (["--config.train.distill.teacher="], r"distill.teacher: empty"),
        (["--config.train.distill.teacher_solver=tsit5"], r"teacher_solver: expected one of"),
    ],
)
def test_distill_config_errors_name_the_field(extra, match):
    config = tiny_config(
        ["--config.train.distill.teacher=/x", "--config.train.distill.student_steps=2", *extra]
    )
    with pytest.raises(ValueError, match=match):
        distill.student_config(config)


@pytest.mark.slow
def test_distillation_resumes_after_sigkill_to_the_uninterrupted_losses(tmp_path_factory):
    # distill_runs killed one copy of the run at step KILL_AT while the other ran to the end.
    runs = distill_runs(tmp_path_factory)
    assert runs.killed_rc == -signal.SIGKILL, runs.killed_out[-4000:]
    assert runs.uninterrupted_rc == 0, runs.uninterrupted_out[-4000:]
    resumed = demo_cli(runs.killed, runs.data, runs.extra, runs.env)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out[-4000:]
    assert "distill: teacher" in out, out[-4000:]  # reloaded: the teacher is not checkpointed
    step = int(re.search(r"resumed from .*/checkpoints/(\d+)", out).group(1))
    assert 5 <= step <= DISTILL_STEPS - 5, out[-4000:]  # a mid-run checkpoint
    reference, losses = read_losses(runs.uninterrupted), read_losses(runs.killed)
    assert sorted(reference) == list(range(1, DISTILL_STEPS + 1))
    for s in range(step + 1, DISTILL_STEPS + 1):
        assert abs(losses[s] - reference[s]) <= 1e-6 * abs(reference[s]), (s, losses, reference)


def test_compile_checks_the_distill_config_before_the_topology(capsys):
    # `samaudio-jax compile` builds the distillation step (teacher in the frozen dict); a
    # wrong config.train.distill is a one-line error naming the field, before any compiling.
    from samaudio_jax.cli.main import main

    args = ["compile", "--config", "configs/tiny.py", "--topology", "v5e:2x2"]
    args += ["--config.train.distill.teacher=/x", "--config.train.distill.student_steps=2"]
    assert main(args + ["--config.train.distill.teacher_steps=3"]) == 2
    err = capsys.readouterr().err
    assert "config.train.distill.teacher_steps: 3 must be a multiple" in err, err
    assert err.count("\n") == 1, err
