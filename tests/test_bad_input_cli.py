"""Bad input through the real `samaudio-jax` command line: a non-zero exit, one line naming
the file or field, no traceback, nothing written; separate's output names stay under --out
and never overwrite each other."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.py")
RATE = 8000


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "samaudio_jax", *map(str, args)],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def assert_one_line_error(result, *fragments):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.random.default_rng(0).normal(size=800) * 0.1, RATE)
    return path


# --- config values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.snr_db=5", "--config.data.snr_db: expected a value like (-15.0, 15.0), got '5'"),
        ("data.snr_db=(15, -15)", "config.data.snr_db: expected low <= high"),
        ("data.snr_db=(nan, 1)", "--config.data.snr_db"),
        ("data.snr_db=(1e400, 1)", "config.data.snr_db: expected finite numbers"),
        ("data.snr_db=(1, 2, 3)", "config.data.snr_db: expected a pair of numbers"),
        ("data.snr_db=('a', 'b')", "config.data.snr_db: expected a pair of numbers"),
        ("data.sample_rate=0", "config.data.sample_rate: expected a positive number"),
        ("data.segment_seconds=-1", "config.data.segment_seconds: expected a positive"),
        ("data.segment_seconds=1e-9", "config.data.segment_seconds: 1e-09 s at 8000 Hz"),
        ("data.min_sources=3", "config.data.min_sources: 3 is more than"),
        ("data.negative_span_prob=2", "config.data.negative_span_prob: expected a probability"),
        ("data.max_shard_bytes=0", "config.data.max_shard_bytes: expected >= 1"),
        ("data.worker_count=-1", "config.data.worker_count: expected >= 0"),
        ("data.synth.clip_seconds=0", "config.data.synth.clip_seconds: expected a positive"),
        ("sample.overlap_seconds=30", "config.sample.overlap_seconds: 30.0 must be less than"),
        ("codec.encoder_rates=5", "--config.codec.encoder_rates: expected a value like"),
        ("model.dim=wide", "--config.model.dim: expected an integer"),
        ("model.dim=65", "config.model.dim: 65 does not split into config.model.num_heads 4"),
        ("codec.hop_length=0", "config.codec.hop_length: expected >= 1, got 0"),
        ("text.small.num_heads=0", "config.text.small.num_heads: expected >= 1, got 0"),
        ("train.global_batch_size=0", "config.train.global_batch_size: expected >= 1"),
        ("mesh.data=0", "config.mesh.data: expected a positive size or -1, got 0"),
        ("mesh.rules=(('batch', 5),)", "config.mesh.rules[0]: expected (logical_name, mesh_axes)"),
        ("nosuch.field=1", "--config.nosuch.field: no field 'nosuch'"),
    ],
)
def test_bad_config_values_are_one_line_errors_and_make_shards_writes_nothing(
    tmp_path, clip, override, message
):
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": clip.name, "description": "x"}])
    before = files_under(tmp_path)
    result = cli(
        "make-shards", "--manifest", manifest, "--out", tmp_path / "shards",
        "--config", TINY, f"--config.{override}",
    )  # fmt: skip
    assert_one_line_error(result, message)
    assert files_under(tmp_path) == before


def test_missing_config_file_is_one_line_error(tmp_path, clip):
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": clip.name, "description": "x"}])
    result = cli(
        "make-shards", "--manifest", manifest, "--out", tmp_path / "o", "--config", "/no.py"
    )
    assert_one_line_error(result, "--config: no such config file: /no.py")
    assert not (tmp_path / "o").exists()


def test_synth_refuses_an_unknown_sound_class_before_writing(tmp_path):
    result = cli(
        "synth", "--out", tmp_path / "corpus", "--config", TINY,
        "--config.data.synth.classes=('tone', 'bogus')",
    )  # fmt: skip
    assert_one_line_error(result, "config.data.synth.classes: unknown sound class 'bogus'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.snr_db=5", "--config.data.snr_db: expected a value like"),
        ("data.snr_db=(15, -15)", "config.data.snr_db: expected low <= high"),
    ],
)
def test_train_refuses_bad_data_values_before_touching_the_workdir(tmp_path, override, message):
    result = cli(
        "train", "--config", TINY, "--workdir", tmp_path / "run",
        "--config.train.synthetic_data=true", f"--config.{override}",
    )  # fmt: skip
    assert result.returncode == 2
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


# --- make-shards manifests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        ('"sample_rate": Infinity', "sample_rate must be a positive integer (Hz), got inf"),
        ('"sample_rate": -Infinity', "sample_rate must be a positive integer (Hz), got -inf"),
        ('"sample_rate": NaN', "sample_rate must be a positive integer (Hz), got nan"),
        ('"sample_rate": -8000', "sample_rate must be a positive integer (Hz), got -8000"),
        ('"sample_rate": 0', "sample_rate must be a positive integer (Hz), got 0"),
        ('"sample_rate": 8000.5', "sample_rate must be a positive integer (Hz), got 8000.5"),
        ('"sample_rate": "fast"', "sample_rate must be a positive integer (Hz), got 'fast'"),
        ('"sample_rate": [8000]', "sample_rate must be a positive integer (Hz), got [8000]"),
        ('"sample_rate": true', "sample_rate must be a positive integer (Hz), got True"),
        ('"sample_rate": 1' + "0" * 400, "sample_rate must be a positive integer (Hz)"),
        ('"spans": 5', "spans must be a list of [start, end] pairs in seconds, got 5"),
        ('"spans": true', "spans must be a list of [start, end] pairs"),
        ('"spans": {"a": 1}', "spans must be a list of [start, end] pairs"),
        ('"spans": "[[0, 1"', "spans is not a valid JSON list"),
        ('"spans": [[0.1]]', "spans[0] must be [start, end] seconds, got [0.1]"),
        ('"spans": [[0, 0.1, 0.2]]', "spans[0] must be [start, end] seconds"),
        ('"spans": [["+", 0, 0.1]]', "spans[0] must be [start, end] seconds"),
        ('"spans": [[0, 0.1], ["a", "b"]]', "spans[1] must be [start, end] seconds"),
        ('"spans": [[true, 0.1]]', "spans[0] must be [start, end] seconds"),
        ('"spans": ["01"]', "spans[0] must be [start, end] seconds, got '01'"),
        ('"spans": [[0.2, 0.1]]', "spans[0] must have 0 <= start < end"),
        ('"spans": [[-1, 0.1]]', "spans[0] must have 0 <= start < end"),
        ('"spans": [[NaN, 0.1]]', "spans[0] must have 0 <= start < end"),
        ('"spans": [[0, Infinity]]', "spans[0] must have 0 <= start < end"),
        ('"spans": [[0, 1' + "0" * 400 + "]]", "spans[0] must be [start, end] seconds"),
        ('"description": 5', "description must be text, got 5"),
        ('"category": ["sfx"]', "category must be text, got ['sfx']"),
        ('"group": {"a": 1}', "group must be text"),
        ('"id": ["x"]', "id must be text"),
        ('"video": 5', "video must be a file path, got 5"),
    ],
)
def test_bad_manifest_fields_are_one_line_errors_and_write_nothing(tmp_path, clip, fields, message):
    good = json.dumps({"path": clip.name, "description": "fine"})
    bad = f'{{"path": "{clip.name}", "description": "x", {fields}}}'
    if '"description": 5' in fields:
        bad = f'{{"path": "{clip.name}", {fields}}}'
    manifest = write_jsonl(tmp_path / "m.jsonl", [good, bad])
    before = files_under(tmp_path)
    # --strict: the bad row stops the run with one line, and nothing is written.
    result = cli("make-shards", "--manifest", manifest, "--out", tmp_path / "shards", "--strict")
    assert_one_line_error(result, f"manifest {manifest} line 2: {message}")
    assert files_under(tmp_path) == before
    # Default (non-strict): the row is skipped and named, the good row is written.
    result = cli("make-shards", "--manifest", manifest, "--out", tmp_path / "shards")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"manifest {manifest} line 2: {message}" in result.stderr, result.stderr
    assert "wrote 1 examples" in result.stdout and "skipped 1" in result.stdout, result.stdout


def test_manifest_numbers_that_are_whole_are_still_accepted(tmp_path, clip):
    rows = [
        {"path": clip.name, "description": "a", "sample_rate": 8000.0, "id": 7, "group": 3},
        {"path": clip.name, "description": "b", "spans": "0:0.05;0.06:0.08"},
    ]
    manifest = write_jsonl(tmp_path / "m.jsonl", rows)
    result = cli("make-shards", "--manifest", manifest, "--out", tmp_path / "shards")
    assert result.returncode == 0, result.stderr
    assert "wrote 2 examples" in result.stdout


# --- separate --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def separator_dir(tmp_path_factory):
    from configs.tiny import get_config
    from samaudio_jax.sample import loading

    path = tmp_path_factory.mktemp("separator") / "sep"
    loading.save(loading.build_separator(get_config()), path)
    return path


SEPARATE_FAST = ["--solver", "euler", "--steps", "1", "--no_plot", "--cache_dir", "none"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"name": "../v"}, "'name' '../v' must be a plain folder name inside --out"),
        ({"name": "ABSOLUTE"}, "'name' 'ABSOLUTE' must be a plain folder name inside --out"),
        ({"name": ".."}, "'name' '..' must be a plain folder name"),
        ({"name": "a\\b"}, "'name' 'a\\\\b' must be a plain folder name"),
        ({"name": "a\nb"}, "'name' 'a\\nb' must be a plain folder name"),
        ({"name": 5}, "'name' must be text, got 5"),
        ({"input": 5}, "'input' must be non-empty text, got 5"),
        ({"description": ["x"]}, "'description' must be non-empty text"),
        ({"spans": 5}, "'spans' must be a list of [sign, start, end], got 5"),
        ({"spans": [["+", 0.1]]}, "spans[0] must be [sign, start, end]"),
        ({"spans": [["*", 0, 0.1]]}, "spans[0] must be [sign, start, end] with sign '+' or '-'"),
        ({"spans": [["+", "a", 0.1]]}, "spans[0] must be [sign, start, end]"),
        ({"spans": [["+", 0.1, 0.05]]}, "spans[0] must have 0 <= start < end"),
        ({"spans": [["+", 0, 1e400]]}, "spans[0] must have 0 <= start < end"),
        ({"video": 5}, "'video' must be a file path, got 5"),
    ],
)
def test_separate_refuses_bad_manifest_rows_before_writing_anything(
    tmp_path, clip, separator_dir, row, message
):
    work = tmp_path / "work"
    work.mkdir()
    if row.get("name") == "ABSOLUTE":  # a path outside --out, known only here
        row = {"name": str(tmp_path / "abs")}
        message = message.replace("ABSOLUTE", str(tmp_path / "abs"))
    rows = [
        {"input": str(clip), "description": "fine", "name": "first"},
        {"input": str(clip), "description": "x", **row},
    ]
    manifest = write_jsonl(work / "m.jsonl", rows)
    before = files_under(tmp_path)
    result = cli(
        "separate", "--checkpoint", separator_dir, "--manifest", manifest,
        "--out", work / "out", *SEPARATE_FAST,
    )  # fmt: skip
    assert result.returncode == 2
    assert_one_line_error(result, f"{manifest}:2: {message}")
    assert files_under(tmp_path) == before  # not the first row's outputs either


def test_separate_names_stay_under_out_and_duplicates_get_their_own_folder(tmp_path, separator_dir):
    rng = np.random.default_rng(1)
    for folder, n in (("one", 800), ("two", 1200), ("three", 960)):
        (tmp_path / folder).mkdir()
        soundfile.write(tmp_path / folder / "take.wav", rng.normal(size=n) * 0.1, RATE)
    rows = [
        {"input": "one/take.wav", "description": "a"},
        {"input": "two/take.wav", "description": "b"},  # same stem: 'take'
        {"input": "three/take.wav", "description": "c", "name": "TAKE"},  # same, but for case
    ]
    manifest = write_jsonl(tmp_path / "m.jsonl", rows)
    before = files_under(tmp_path)
    result = cli(
        "separate", "--checkpoint", separator_dir, "--manifest", manifest,
        "--out", tmp_path / "out", *SEPARATE_FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{manifest}:2: output name 'take' is already used by {manifest}:1" in result.stderr
    assert "writing to 'take-2' instead" in result.stderr
    assert "writing to 'TAKE-3' instead" in result.stderr
    new = files_under(tmp_path) - before
    out = tmp_path / "out"
    assert all(p == out or out in p.parents for p in new)
    lengths = {}
    for name in ("take", "take-2", "TAKE-3"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["residual.wav", "target.wav"]
        lengths[name] = soundfile.info(out / name / "target.wav").frames
    assert lengths == {"take": 800, "take-2": 1200, "TAKE-3": 960}
    assert sorted(p.name for p in out.iterdir()) == ["TAKE-3", "take", "take-2"]


def test_folder_inputs_with_one_stem_get_distinct_folders(tmp_path, capsys):
    import argparse

    from samaudio_jax.cli import separate

    for name in ("a.wav", "a.flac", "..wav"):
        soundfile.write(tmp_path / name, np.zeros(80), RATE, format=name.rsplit(".", 1)[1])
    args = argparse.Namespace(
        input=str(tmp_path), manifest=None, description="x", span=[], video=None, mask=None
    )
    jobs = separate.collect_jobs(args)
    assert [(j["input"].name, j["name"]) for j in jobs] == [
        ("..wav", "input"),  # its stem "." would be --out itself
        ("a.flac", "a"),
        ("a.wav", "a-2"),
    ]
    assert (
        f"--input {tmp_path / 'a.wav'}: output name 'a' is already used" in capsys.readouterr().err
    )
