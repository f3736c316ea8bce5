"""`samaudio-jax judge` through its real command-line entry (in process, to share one
compilation): single and manifest modes print the four scores and write JSON; bad input ends
with one line naming it (a directory without tokenizer.json, a missing file, a manifest row,
an unknown checkpoint key); silent audio gives one warning line."""

import json

import numpy as np
import pytest
import soundfile

from samaudio_jax.cli.main import main
from samaudio_jax.judge.scorer import JudgeScorer
from tests import judge_reference as R

RATE = R.CODEC["sample_rate"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge_cli")
    R.write_judge_dir(root / "judge", seed=1)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal(48) * 0.3
    soundfile.write(root / "mix.wav", mix, RATE, subtype="FLOAT")
    soundfile.write(root / "sep.wav", mix * 0.5, 2 * RATE // 2, subtype="FLOAT")
    soundfile.write(root / "silent.wav", np.zeros(48), RATE, subtype="FLOAT")
    return root


def run(capsys, *args):
    code = main(["judge", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_single_and_manifest_modes(setup, capsys, tmp_path):
    root = setup
    code, out, err = run(capsys, "--checkpoint", root / "judge", "--mixture", root / "mix.wav",
                         "--separated", root / "sep.wav", "--description", "a dog barks")  # fmt: skip
    assert code == 0, err
    header, line = out.splitlines()[:2]
    assert header.split()[1:] == ["overall", "recall", "precision", "faithfulness"]
    printed = [float(x) for x in line.split()[-4:]]
    mix, _ = soundfile.read(root / "mix.wav", dtype="float32")
    sep, _ = soundfile.read(root / "sep.wav", dtype="float32")
    want = JudgeScorer.load(root / "judge", max_batch=1).score([mix], [sep], ["a dog barks"], RATE)
    assert np.allclose(
        printed, [want[k][0] for k in ("overall", "recall", "precision", "faithfulness")], atol=1e-4
    )

    manifest = root / "items.jsonl"
    rows = [{"mixture": "mix.wav", "separated": "sep.wav", "description": "a dog barks", "name": "one"},
            {"mixture": "mix.wav", "separated": "silent.wav", "description": "loud car engine", "name": "two"}]  # fmt: skip
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_json = tmp_path / "scores.json"
    code, out, err = run(capsys, "--checkpoint", root / "judge", "--manifest", manifest,
                         "--json", out_json, "--max_batch", "1")  # fmt: skip
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: "), err
    assert "separated[0]: silent audio" in warnings[0]
    saved = json.loads(out_json.read_text())
    assert [r["name"] for r in saved] == ["one", "two"]
    assert np.isclose(saved[0]["overall"], printed[0], atol=1e-4)


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("no_tokenizer", ["no tokenizer.json"]),
        ("missing_audio", ["nope.wav", "no such file"]),
        ("bad_row", ["items.jsonl:1", "'separated'"]),
        ("no_description", ["--mixture needs --separated and --description"]),
        ("bad_key", ["unexpected key", "bogus.weight"]),
    ],
)
def test_bad_input_is_one_line(setup, capsys, tmp_path, case, fragments):
    root = setup
    ckpt = root / "judge"
    args = [
        "--mixture",
        root / "mix.wav",
        "--separated",
        root / "sep.wav",
        "--description",
        "a dog",
    ]
    if case == "no_tokenizer":
        ckpt = tmp_path / "bare"
        ckpt.mkdir()
        for name in ("config.json", "model.safetensors"):
            (ckpt / name).write_bytes((root / "judge" / name).read_bytes())
    elif case == "missing_audio":
        args[1] = tmp_path / "nope.wav"
    elif case == "bad_row":
        (tmp_path / "items.jsonl").write_text(
            json.dumps({"mixture": "a.wav", "description": "x"}) + "\n"
        )
        args = ["--manifest", tmp_path / "items.jsonl"]
    elif case == "no_description":
        args = args[:4]
    elif case == "bad_key":
        from samaudio_jax.state_dict_io import read_state_dict, write_state_dict

        ckpt = tmp_path / "extra"
        ckpt.mkdir()
        for name in ("config.json", "tokenizer.json"):
            (ckpt / name).write_bytes((root / "judge" / name).read_bytes())
        state, _ = read_state_dict(root / "judge")
        write_state_dict(
            {**state, "bogus.weight": np.zeros(3, np.float32)}, ckpt / "model.safetensors"
        )
    code, out, err = run(capsys, "--checkpoint", ckpt, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_separate_judge_options_name_a_bad_directory(setup, capsys, tmp_path):
    root = setup
    for flag in ("--judge", "--predict_spans"):
        code = main(["separate", "--checkpoint", str(tmp_path / "unused"), "--input",
                     str(root / "mix.wav"), "--description", "a dog", "--out", str(tmp_path / "o"),
                     flag, str(tmp_path / "missing")])  # fmt: skip
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "missing: no such directory" in lines[0], lines[0]


def test_evaluate_with_judge_adds_saj_columns_equal_to_the_scorer(setup):
    """evaluate(..., judge=) (what `eval --judge` calls): per item, the SAJ scores of each
    estimate against its mixture and description, as the scorer gives them; medians per
    category and the table's SAJ columns."""
    from configs.tiny import get_config
    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.sample import loading

    sep = loading.build_separator(get_config())
    sep.config.sample.solver, sep.config.sample.steps = "euler", 2
    sep.config.sample.compilation_cache_dir = "none"
    rng = np.random.default_rng(3)
    mixtures = []
    for i, (desc, cat) in enumerate([("a dog barks", "sfx"), ("a man speaks", "speech")] * 2):
        target = (rng.standard_normal(2400) * 0.2).astype(np.float32)
        mix = target + (rng.standard_normal(2400) * 0.2).astype(np.float32)
        mixtures.append(ev.Mixture(mix, target, desc, cat, f"m{i}"))
    judge = JudgeScorer.load(setup / "judge", max_batch=2)
    summary = ev.evaluate(sep, mixtures, seed=5, batch=2, judge=judge)
    estimates = ev.separate_mixtures(sep, mixtures, seed=5, batch=2)
    want = judge.score(
        [m.mixture for m in mixtures], estimates, [m.description for m in mixtures],
        sep.codec.sample_rate,
    )  # fmt: skip
    got = [item["saj_overall"] for item in summary["items"]]
    np.testing.assert_allclose(got, np.asarray(want["overall"], np.float64), rtol=1e-5)
    assert set(summary["per_category"]) == {"sfx", "speech"}
    for stats in summary["per_category"].values():
        assert np.isfinite(stats["saj_overall_median"])
    assert "SAJ overall" in ev.format_table(summary)
