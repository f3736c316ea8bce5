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
from distill_testlib import demo_config, trained_teacher
from train_testlib import subprocess_env, tiny_config, train_cli

from samaudio_jax.eval import evaluate as ev
from samaudio_jax.sample.loading import build_separator, load, save
from samaudio_jax.train import distill
from samaudio_jax.train.loop import train
from samaudio_jax.train.metrics import read_losses

STUDENT = 1


def _median_si_sdri(separator, mixtures, **kw) -> float:
    estimates = separator.separate(
        [m.mixture for m in mixtures], [m.description for m in mixtures],
        key=jax.random.key(0), max_batch=len(mixtures), **kw,
    ).target  # fmt: skip
    per_item = ev.score([m.target for m in mixtures], estimates, [m.mixture for m in mixtures])
    return float(np.median(per_item["si_sdri"]))


@pytest.mark.slow
def test_student_loss_falls_and_beats_the_teacher_at_its_step_count(tmp_path_factory, tmp_path):
    data, teacher_dir = trained_teacher(tmp_path_factory)
    config = demo_config(
        data,
        [
            "--config.train.steps=30",
            "--config.train.warmup_steps=0",
            "--config.train.learning_rate=1e-3",
            f"--config.train.distill.teacher={teacher_dir}",
            f"--config.train.distill.student_steps={STUDENT}",
            "--config.train.distill.teacher_steps=8",
        ],
    )
    result = train(config, str(tmp_path / "student"), print_fn=lambda *a, **k: None)
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses

    # The export carries the student's sampler: euler x STUDENT.
    save(load(tmp_path / "student"), tmp_path / "export")
    student = load(tmp_path / "export")
    assert (student.config.sample.solver, student.config.sample.steps) == ("euler", STUDENT)
    assert student.config.train.distill.student_steps == STUDENT

    teacher = load(teacher_dir)
    mixtures = ev.heldout_mixtures(data, teacher.config.data, 20)
    ours = _median_si_sdri(student, mixtures)  # its own defaults from the export
    theirs = _median_si_sdri(teacher, mixtures, solver="euler", steps=STUDENT)
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


RUN = ["--config.train.steps=8", "--config.train.checkpoint_every=2"]


@pytest.mark.slow
def test_distillation_resumes_after_sigkill_to_the_uninterrupted_losses(tmp_path):
    # A tiny teacher (fresh weights, exported in the release layout) for the tiny config.
    save(build_separator(tiny_config(), seed=3), tmp_path / "teacher")
    extra = RUN + [
        f"--config.train.distill.teacher={tmp_path / 'teacher'}",
        "--config.train.distill.student_steps=2",
        "--config.train.distill.teacher_steps=4",
    ]
    env = subprocess_env()
    ref = train_cli(tmp_path / "ref", extra, env)
    killed = train_cli(tmp_path / "kill", extra, env)
    for line in killed.stdout:
        if re.match(r"^step 5/", line):
            killed.send_signal(signal.SIGKILL)
            break
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    out = ref.communicate(timeout=300)[0]
    assert ref.returncode == 0, out[-4000:]
    assert "distill: teacher" in out, out[-4000:]
    resumed = train_cli(tmp_path / "kill", extra, env)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out[-4000:]
    step = int(re.search(r"resumed from .*/checkpoints/(\d+)", out).group(1))
    assert 2 <= step <= 6, out[-4000:]
    reference, losses = read_losses(tmp_path / "ref"), read_losses(tmp_path / "kill")
    assert sorted(reference) == list(range(1, 9))
    for s in range(step + 1, 9):
        assert abs(losses[s] - reference[s]) <= 1e-6 * abs(reference[s]), (s, losses, reference)
