"""Evaluation during training (train/validation.py): values at exactly the evaluated steps in
metrics.jsonl and TensorBoard, equal to a separate `eval` of the same checkpoint; the held-out
loss is fixed (same weights, same values); the best checkpoint survives keep-N rotation."""

from __future__ import annotations

import json
import struct
import subprocess

import jax
import numpy as np
import portpicker
import pytest
from train_testlib import PYTHON, REPO, subprocess_env, tiny_config, train_cli

from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.config_checks import ConfigError, validate_config
from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.train import validation


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_synth_corpus(
        out, seed=0, sample_rate=8000, clip_seconds=0.1, train_per_class=2, test_per_class=1
    )
    return out


def _tb_scalars(data: bytes) -> list[tuple[str, int, float]]:
    from tensorboardX.proto import event_pb2

    out, i = [], 0
    while i < len(data):
        (length,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
        i += 16 + length
    return out


# Evaluation and a checkpoint every 2 steps, one checkpoint kept besides the best by the
# highest held-out loss (the least trained weights: the loss falls).
EVAL = [
    "--config.train.global_batch_size=8",
    "--config.train.checkpoint_every=2",
    "--config.train.keep_checkpoints=1",
    "--config.train.eval_every=2",
    "--config.train.eval_batches=2",
    "--config.train.eval_num_mixtures=3",
    "--config.train.eval_solver=midpoint",
    "--config.train.eval_ode_steps=2",
    "--config.train.keep_best_by=eval/loss",
    "--config.train.keep_best_mode=max",
]


def _eval_lines(workdir) -> dict[int, dict]:
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {d["step"]: d for d in lines if "eval/loss" in d}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, corpus):
    """6 steps in one process on 8 CPU devices (a workdir read by two tests)."""
    workdir = tmp_path_factory.mktemp("single") / "run"
    extra = EVAL + [f"--config.train.eval_data_dir={corpus}", "--config.train.steps=6"]
    run = train_cli(workdir, extra, subprocess_env(devices=8))
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-4000:]
    return workdir


@pytest.mark.slow
def test_eval_values_at_the_configured_steps_equal_a_separate_eval_and_best_survives(
    tmp_path, corpus, single_run
):
    workdir = single_run
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = _eval_lines(workdir)
    assert sorted(evals) == [2, 4, 6]
    for d in evals.values():
        buckets = [d[f"eval/loss_t{j}"] for j in range(4)]
        assert all(np.isfinite(buckets)) and len(set(buckets)) == 4
        assert np.isfinite(d["eval/si_sdri_median"]) and np.isfinite(d["eval/si_sdri_mean"])
        assert any(k.startswith("eval/si_sdri_median/") for k in d)  # per category
    assert [d["step"] for d in lines if "loss" in d] == [1, 2, 3, 4, 5, 6]

    # TensorBoard got the same values under the same names.
    (events,) = (workdir / "tb").iterdir()
    tb = {(tag, step): v for tag, step, v in _tb_scalars(events.read_bytes())}
    for step, d in evals.items():
        assert tb[("eval/si_sdri_median", step)] == pytest.approx(d["eval/si_sdri_median"])
        assert tb[("eval/loss_t3", step)] == pytest.approx(d["eval/loss_t3"])
    assert ("train/loss", 6) in tb

    # Keep-best: the highest eval/loss is kept through rotation, best.json names it.
    best = validation.read_best(workdir)
    expected = max(evals, key=lambda s: evals[s]["eval/loss"])
    assert expected != 6, "the test needs a best step that rotation would delete"
    assert best["step"] == expected and best["value"] == evals[expected]["eval/loss"]
    kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert kept == sorted({expected, 6})

    # `eval` on that checkpoint with the same mixtures, solver, steps: the same numbers.
    env = subprocess_env()
    result = tmp_path / "eval.json"
    cmd = [PYTHON, "-m", "samaudio_jax", "eval", "--checkpoint", str(workdir), "--step", "best"]
    cmd += ["--data", str(corpus), "--num_mixtures", "3", "--seed", "1234"]
    cmd += ["--solver", "midpoint", "--steps", "2", "--json", str(result)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(result.read_text())
    logged = evals[expected]
    for key, value in validation.separation_values(summary).items():
        assert logged[key] == value, key  # exact: the same program on the same weights


@pytest.mark.slow
def test_two_processes_evaluate_like_one(tmp_path, corpus, single_run):
    """jax.distributed on localhost, 2 processes x 4 devices: both take part in the loss
    program and the gathers, process 0 writes; the validation set and the values are those
    of the single process on 8 devices (up to float summation order)."""
    port = portpicker.pick_unused_port()
    extra = EVAL + [f"--config.train.eval_data_dir={corpus}", "--config.train.steps=4"]
    extra += [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
    env = subprocess_env(devices=4)
    workers = [train_cli(tmp_path / "multi", extra + [f"--process_id={i}"], env) for i in (0, 1)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-4000:]
    assert "eval step 4" in outputs[0] and "eval step" not in outputs[1]
    multi, single = _eval_lines(tmp_path / "multi"), _eval_lines(single_run)
    assert sorted(multi) == [2, 4]
    for step in (2, 4):
        for key, value in single[step].items():
            if key.startswith("eval/loss"):
                assert multi[step][key] == pytest.approx(value, rel=1e-5), (step, key)
            elif key.startswith("eval/si_sdr"):  # weights trained alike to ~1e-6
                assert multi[step][key] == pytest.approx(value, abs=1e-2), (step, key)
    assert validation.read_best(tmp_path / "multi")["step"] == 2


def test_heldout_loss_is_fixed_and_per_bucket(corpus):
    """Same weights -> the same values at every evaluation; another eval_seed draws other
    batches, times and noise; the buckets see different times."""
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    config = tiny_config(
        [
            f"--config.train.eval_data_dir={corpus}",
            "--config.train.eval_every=1",
            "--config.train.eval_batches=2",
            "--config.train.eval_num_mixtures=0",
        ]
    )
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    # Random weights placed directly (init_state's optimizer compile is not under test).
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda s: jax.device_put((0.05 * rng.standard_normal(s.shape)).astype(s.dtype), s.sharding),
        setup.abstract_state["params"],
    )
    state, frozen = {"params": params}, state_lib.init_frozen(setup)
    first = validation.Validator(config, setup)
    a = first.run(1, state, frozen)
    b = first.run(2, state, frozen)
    keys = validation.loss_keys(config)
    assert set(keys) <= set(a) and not any(k.startswith("eval/si_sdr") for k in a)
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert len({a[f"eval/loss_t{j}"] for j in range(4)}) == 4
    config.train.eval_seed = 7
    second = validation.Validator(config, setup)
    second.loss = first.loss  # the same program (a function of the setup): one compile
    other = second.run(1, state, frozen)
    assert other["eval/loss"] != a["eval/loss"]


def test_keep_best_metric_must_be_an_eval_value(corpus):
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    config = tiny_config(
        [
            f"--config.train.eval_data_dir={corpus}",
            "--config.train.eval_every=1",
            "--config.train.eval_batches=1",
            "--config.train.eval_num_mixtures=0",
            "--config.train.keep_best_by=eval/si_sdri_median",
        ]
    )
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    with pytest.raises(ConfigError, match="keep_best_by: 'eval/si_sdri_median' is not an eval"):
        validation.Validator(config, setup)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--config.train.keep_best_by=eval/loss"], "needs evaluation"),
        (
            [
                "--config.train.keep_best_by=eval/loss",
                "--config.train.eval_every=3",
                "--config.train.checkpoint_every=2",
            ],
            "divide the other",
        ),
        (["--config.train.eval_time_buckets=(0.5, 0.25)"], "eval_time_buckets"),
        (["--config.train.keep_best_mode=best"], "keep_best_mode"),
        (["--config.train.eval_ode_steps=0"], "eval_ode_steps"),
    ],
)
def test_eval_config_errors_name_the_field(extra, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(tiny_config(extra))


@pytest.mark.parametrize("mode, best", [("max", 2), ("min", 3)])
def test_best_checkpoint_survives_rotation_and_a_restart(tmp_path, mode, best):
    """keep_checkpoints=1 and keep_best_by: the newest plus the best by the metric; steps
    without metrics are not candidates, a NaN is never best; a new manager (a resumed run)
    keeps honouring it."""
    config = tiny_config(
        [
            "--config.train.keep_checkpoints=1",
            "--config.train.checkpoint_every=1",
            "--config.train.eval_every=1",
            "--config.train.keep_best_by=eval/si_sdri_median",
            f"--config.train.keep_best_mode={mode}",
            "--config.train.async_checkpointing=false",
        ]
    )
    state = {"w": np.arange(3.0, dtype=np.float32)}
    values = {1: 2.0, 2: 5.0, 3: 1.0, 4: None, 5: float("nan"), 6: 3.0}
    ckpt = TrainCheckpointer(tmp_path / "checkpoints", config)
    for step, v in values.items():
        metrics = None if v is None else {"eval/si_sdri_median": v}
        ckpt.save(step, state, force=True, metrics=metrics)
    assert ckpt.best_step() == best
    assert ckpt.all_steps() == [best, 6]
    ckpt.close()
    again = TrainCheckpointer(tmp_path / "checkpoints", config)
    again.save(7, state, force=True, metrics={"eval/si_sdri_median": 4.0 if mode == "max" else 2.0})
    again.save(8, state, force=True)
    assert again.best_step() == best and again.all_steps() == [best, 8]
    again.close()


def test_eval_step_argument_errors_name_it(tmp_path):
    from samaudio_jax.cli.eval import _workdir_step

    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    assert _workdir_step(tmp_path, None) is None and _workdir_step(tmp_path, "4") == 4
    with pytest.raises(ValueError, match=r"--step: .*checkpoints/3 does not exist"):
        _workdir_step(tmp_path, "3")
    with pytest.raises(ValueError, match="--step: expected a step number or 'best'"):
        _workdir_step(tmp_path, "latest")
    with pytest.raises(ValueError, match=r"--step: .*best.json does not exist"):
        _workdir_step(tmp_path, "best")
    (tmp_path / "best.json").write_text(json.dumps({"step": 4, "metric": "eval/loss"}))
    assert _workdir_step(tmp_path, "best") == 4


def test_train_refuses_an_unknown_keep_best_metric_in_one_line(tmp_path, corpus, capsys):
    from train_testlib import TINY

    from samaudio_jax.cli import train as train_cli_module

    argv = ["--config", str(REPO / "configs" / "tiny.py"), "--workdir", str(tmp_path / "w")]
    argv += TINY + [f"--config.train.eval_data_dir={corpus}", "--config.train.eval_every=2"]
    argv += ["--config.train.checkpoint_every=2", "--config.train.keep_best_by=eval/sdri"]
    assert train_cli_module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config.train.keep_best_by: 'eval/sdri' is not an eval value")
    assert "\n" not in err and "eval/si_sdri_median" in err
    assert not (tmp_path / "w" / "checkpoints").exists()
