"""`demo` argument errors are one line, before any work: half a manifest pair, both data
forms, an incomplete --data directory, a missing manifest file."""

from __future__ import annotations

import argparse

import pytest

from samaudio_jax.cli import demo as demo_cli


def _args(tmp_path, **kw):
    base = dict(
        workdir=str(tmp_path / "w"),
        config="",
        eval_mixtures=3,
        manifest="",
        test_manifest="",
        data="",
    )
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    "kw, code, message",
    [
        ({"manifest": "a.jsonl"}, 2, "--manifest and --test_manifest: give both"),
        (
            {"manifest": "a.jsonl", "test_manifest": "b.jsonl", "data": "d"},
            2,
            "--data: give either",
        ),
        ({"data": "NOWHERE"}, 1, "needs complete train/ and test/ shards"),
        ({"manifest": "NOWHERE/a.jsonl", "test_manifest": "b.jsonl"}, 1, "no such file"),
        ({"distill": -1}, 2, "--distill / --distill_train_steps"),
    ],
)
def test_demo_argument_errors_are_one_line(tmp_path, capsys, kw, code, message):
    if "data" in kw and kw["data"] == "NOWHERE":
        kw = {**kw, "data": str(tmp_path / "nowhere")}
    if kw.get("manifest", "").startswith("NOWHERE"):
        kw = {**kw, "manifest": str(tmp_path / "a.jsonl")}
    assert demo_cli.run(_args(tmp_path, **kw), []) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
