"""`samaudio-jax nfe-sweep` on a tiny trained model: every requested row is there with
finite scores and times, the counted NFE of fixed-step rows is steps x evaluations per
step, the markdown and PNG are written, and each solver's per-mixture scores equal those of
a plain separate() call with the same settings."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from distill_testlib import STUDENT_STEPS, trained_teacher

from samaudio_jax.cli.main import main
from samaudio_jax.eval import evaluate as ev
from samaudio_jax.eval import nfe_sweep
from samaudio_jax.sample.loading import load
from samaudio_jax.sample.separate import separate

# One fixed-step and one adaptive solver (each row compiles its own program): a fixed-step
# row at the distilled student's step count and held-out mixtures, so that test_distill's
# comparison reuses the compiled euler program.
NUM = 16
NFE = STUDENT_STEPS
SOLVERS = ("euler", "tsit5")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return trained_teacher(tmp_path_factory)


@pytest.mark.slow
def test_sweep_rows_outputs_and_equal_to_separate(tmp_path, teacher):
    data, work = teacher
    out = tmp_path / "sweep"
    args = ["nfe-sweep", "--checkpoint", str(work), "--data", str(data), "--out", str(out)]
    args += ["--num", str(NUM), "--batch", str(NUM), "--solvers", ",".join(SOLVERS)]
    args += ["--nfe", str(NFE), "--schedules", "uniform,late", "--tolerances", "1e-2"]
    assert main(args) == 0
    result = json.loads((out / "nfe_sweep.json").read_text())
    expected = nfe_sweep.plan(SOLVERS, (NFE,), ("uniform", "late"), (1e-2,))
    assert len(expected) == 3
    got = [(r["solver"], r["steps"], r["schedule"], r["tol"]) for r in result["rows"]]
    want = [(s.solver, s.steps, None if s.tol else s.schedule, s.tol) for s in expected]
    assert got == want
    for r in result["rows"]:
        assert math.isfinite(r["seconds_per_mixture"]) and r["seconds_per_mixture"] > 0
        assert math.isfinite(r["si_sdri_median"]) and math.isfinite(r["si_sdri_mean"])
        assert len(r["si_sdri"]) == NUM and all(map(math.isfinite, r["si_sdri"]))
        assert r["per_category"] and all(
            math.isfinite(c["si_sdri_median"]) for c in r["per_category"].values()
        )
        if r["tol"] is None:
            assert r["nfe"] == r["nominal_nfe"] == NFE
        else:  # counted: Tsit5 makes 6 evaluations a step, plus the first-step probe
            assert r["nfe"] >= 6 and r["nfe"] == int(r["nfe"])
    # The late grid is not the uniform one.
    by = {(r["solver"], r["schedule"]): r["si_sdri"] for r in result["rows"]}
    assert by[("euler", "uniform")] != by[("euler", "late")]
    md = (out / "nfe_sweep.md").read_text()
    assert "| euler (uniform) |" in md and "tsit5" in md
    assert (out / "nfe_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # One row per solver against a plain separate() with that row's settings.
    sep = load(work)
    mixtures = ev.heldout_mixtures(data, sep.config.data, NUM, 1234)
    rows = {r["solver"]: r for r in reversed(result["rows"])}  # first row of each solver
    for solver, r in rows.items():
        settings = (
            dict(solver=solver, rtol=r["tol"], atol=r["tol"])
            if r["tol"]
            else dict(solver=solver, steps=r["steps"], schedule=r["schedule"])
        )
        estimates = separate(
            sep.model, sep.codec, sep.text_encoder,
            [m.mixture for m in mixtures], [m.description for m in mixtures],
            key=jax.random.fold_in(jax.random.key(0), 0), max_batch=NUM,
            prediction=sep.config.model.prediction, sigma_min=sep.config.train.sigma_min,
            cache_dir=None, **settings,
        ).target  # fmt: skip
        scores = ev.score([m.target for m in mixtures], estimates, [m.mixture for m in mixtures])
        np.testing.assert_array_equal(scores["si_sdri"], r["si_sdri"], err_msg=solver)

    # The evaluation counter (adaptive rows' NFE) counts a fixed-step run exactly.
    counted = dataclasses.replace(sep, model=nfe_sweep.counting_model(sep.model))
    before = nfe_sweep._evaluations()
    counted.separate([m.mixture for m in mixtures[:2]], ["a", "b"], solver="rk4", steps=1)
    assert nfe_sweep._evaluations() - before == 4


def test_plan_gives_each_solver_the_steps_that_reach_each_nfe():
    rows = nfe_sweep.plan(
        ("euler", "midpoint", "heun", "rk4", "tsit5"), (2, 4), ("uniform", "late"), (1e-2, 1e-3)
    )
    got = [(r.solver, r.steps, r.schedule if r.tol is None else None, r.tol) for r in rows]
    fixed = [("euler", 2), ("euler", 4), ("midpoint", 1), ("midpoint", 2)]
    fixed += [("heun", 1), ("heun", 2), ("rk4", 1)]
    want = [
        (solver, steps, schedule, None)
        for name in ("euler", "midpoint", "heun", "rk4")
        for schedule in ("uniform", "late")
        for solver, steps in fixed
        if solver == name
    ]
    assert got == want + [("tsit5", None, None, 1e-2), ("tsit5", None, None, 1e-3)]
    assert {r.nominal_nfe for r in rows if r.solver == "rk4"} == {4}  # rk4 cannot make 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--solvers", "euler,bogus"], "--solvers: unknown solver 'bogus'"),
        (["--solvers", "rk4", "--nfe", "1,2,3"], "no solver reaches"),
        (["--schedules", "cosine"], "--schedules: unknown 'cosine'"),
        (["--nfe", "two"], "--nfe: expected a comma-separated list"),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, extra, message):
    args = ["nfe-sweep", "--checkpoint", str(tmp_path), "--data", str(tmp_path), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
