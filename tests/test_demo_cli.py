"""The demo end to end on a tiny config: every artefact exists, the summary is printed, a
second run resumes training from the checkpoint (not from step 0) and a third skips every
finished stage; the exported directory imports into a workdir that eval and train use."""

from __future__ import annotations

import argparse
import json

import pytest

from samaudio_jax.cli.config_loader import load_config

TINY = [
    "--config.model.dim=32",
    "--config.model.num_layers=1",
    "--config.model.num_heads=4",
    "--config.model.text_dim=16",
    "--config.text.small.dim=16",
    "--config.data.synth.train_per_class=2",
    "--config.data.synth.test_per_class=2",
    "--config.train.global_batch_size=4",
    "--config.train.log_every=1",
    "--config.train.warmup_steps=1",
    "--config.sample.steps=2",
]


def tiny_config(steps):
    return load_config("configs/demo.py", TINY + [f"--config.train.steps={steps}"])


@pytest.mark.slow
def test_demo_runs_end_to_end_resumes_and_exports(tmp_path):
    from samaudio_jax.cli import eval as eval_cli
    from samaudio_jax.cli import export as export_cli
    from samaudio_jax.cli import import_release as import_cli
    from samaudio_jax.demo import run_demo

    work = tmp_path / "demo"
    lines = []
    state = run_demo(tiny_config(2), work, eval_mixtures=3, print_fn=lines.append)
    for name in ("metrics.jsonl", "eval.json", "latent_scale.npy", "demo_state.json"):
        assert (work / name).is_file(), name
    for name in ("mixture.wav", "target.wav", "residual.wav", "spectrograms.png"):
        assert (work / "separation" / name).is_file(), name
    for name in ("config.json", "checkpoint.pt", "model.safetensors"):
        assert (work / "export" / name).is_file(), name
    assert list((work / "tb").iterdir()), "no TensorBoard events"
    assert (work / "checkpoints" / "2").is_dir()
    assert state["train"]["final_step"] == 2 and state["train"]["resumed_from"] is None
    assert state["export"]["reimport_max_abs_diff"] == 0.0
    summary = "\n".join(map(str, lines))
    assert "SI-SDRi median dB" in summary and str(work / "export") in summary
    evaluated = json.loads((work / "eval.json").read_text())
    assert evaluated["overall"]["count"] == 3 and evaluated["step"] == 2

    lines.clear()
    state = run_demo(tiny_config(4), work, eval_mixtures=3, print_fn=lines.append)
    assert state["train"]["resumed_from"] == 2 and state["train"]["final_step"] == 4
    assert any("resumed from" in str(x) for x in lines)
    assert json.loads((work / "eval.json").read_text())["step"] == 4

    lines.clear()
    run_demo(tiny_config(4), work, eval_mixtures=3, print_fn=lines.append)
    text = "\n".join(map(str, lines))
    assert "already reaches train.steps=4" in text and "already holds step 4" in text
    assert not any(str(x).startswith("step ") for x in lines), "trained again"

    # export CLI -> import CLI -> eval CLI on the imported workdir
    out, imported = tmp_path / "export", tmp_path / "imported"
    ns = argparse.Namespace
    assert export_cli.run(ns(workdir=str(work), out=str(out), step=None), []) == 0
    assert import_cli.run(ns(checkpoint=str(out), workdir=str(imported), t5_dir=None), []) == 0
    assert (imported / "checkpoints" / "0").is_dir()
    report = tmp_path / "eval.json"
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)  # the real flags and their defaults
    args = parser.parse_args(
        ["--checkpoint", str(imported), "--data", str(work / "data"), "--num", "3"]
        + ["--seed", "1234", "--json", str(report)]
    )
    assert eval_cli.run(args, []) == 0
    # same weights, same mixtures, same sampler key: the same scores as the demo's eval
    a = json.loads(report.read_text())["overall"]["si_sdri_median"]
    b = json.loads((work / "eval.json").read_text())["overall"]["si_sdri_median"]
    assert abs(a - b) < 1e-4

    assert export_cli.run(ns(workdir=str(tmp_path / "none"), out=str(out), step=None), []) == 2

    # train fine-tunes the imported checkpoint: it resumes from step 0
    from samaudio_jax.train.loop import train

    config = load_config(str(imported / "config.py"), ["--config.train.steps=1"])
    result = train(config, str(imported), print_fn=lambda *a, **k: None)
    assert result.resumed_from == 0 and result.final_step == 1
