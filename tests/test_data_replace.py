"""make-shards replaces a dataset only with a complete one; bad rows are skipped and counted."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samaudio_jax.cli import make_shards
from samaudio_jax.data.manifest import read_manifest
from samaudio_jax.data.shard_writer import write_shards
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.staging import StagingError

RATE = 8000
REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["--config.data.sample_rate=8000"]


def _manifest(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _siblings(tmp_path, name="out"):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"{name}."))


@pytest.fixture
def old_dataset(tmp_path):
    """tmp_path/out: a complete 3-record dataset, and its files' bytes."""
    rows = []
    for i in range(3):
        sf.write(tmp_path / f"old{i}.wav", np.full(400, 0.1 * (i + 1)), RATE, subtype="FLOAT")
        rows.append({"path": f"old{i}.wav", "description": f"old {i}", "id": f"old{i}"})
    write_shards(read_manifest(_manifest(tmp_path / "old.jsonl", rows)), tmp_path / "out", RATE)
    return tmp_path / "out", _snapshot(tmp_path / "out")


def test_overwrite_with_an_all_bad_manifest_exits_nonzero_and_keeps_the_old_dataset(
    tmp_path, old_dataset
):
    out, before = old_dataset
    (tmp_path / "text.wav").write_text("not audio\n" * 20)
    manifest = _manifest(
        tmp_path / "bad.jsonl",
        [
            {"path": "missing.wav", "description": "a"},
            {"path": "text.wav", "description": "b"},
            {"path": "old0.wav", "description": "c", "category": "bogus"},
            "{not json",
        ],
    )
    cmd = [sys.executable, "-m", "samaudio_jax", "make-shards", "--manifest", str(manifest)]
    cmd += ["--out", str(out), "--overwrite", *OVERRIDES]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={"PYTHONPATH": str(REPO)}, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"make-shards: error: manifest {manifest}: no record could be written")
    # Rows failing validation are counted when the manifest is read, before any decoding.
    assert f"4 skipped (first: manifest {manifest} line 3: category 'bogus'" in last
    assert "missing.wav: no such file" in proc.stderr and "not valid JSON" in proc.stderr
    # The old dataset is byte for byte what it was, and nothing was left beside it.
    assert _snapshot(out) == before
    assert [ShardReader(out)[i]["id"] for i in range(3)] == ["old0", "old1", "old2"]
    assert _siblings(tmp_path) == []


def test_bad_rows_mid_manifest_are_skipped_and_counted(tmp_path, old_dataset, capsys):
    out, _ = old_dataset
    hop = 320  # the default codec hop (1920 at 48 kHz) at 8 kHz: one feature row per hop
    for i in range(3):
        sf.write(tmp_path / f"g{i}.wav", np.full(800, 0.2), RATE, subtype="FLOAT")
    np.save(tmp_path / "f4.npy", np.zeros((-(-800 // hop), 4), np.float32))
    np.save(tmp_path / "f6.npy", np.zeros((-(-800 // hop), 6), np.float32))
    (tmp_path / "text.wav").write_text("not audio\n" * 20)
    rows = [
        {"path": "g0.wav", "description": "a", "id": "g0", "video_features": "f4.npy"},
        {"path": "g0.wav", "description": "b", "sample_rate": "fast"},  # bad field
        {"path": "g1.wav", "description": "c", "id": "g1"},
        {"path": "text.wav", "description": "d"},  # unreadable audio
        # The writer rejects it: one dataset has one feature width (4 from the first row).
        {"path": "g2.wav", "description": "e", "id": "w", "video_features": "f6.npy"},
        {"path": "g2.wav", "description": "f", "id": "g2"},
    ]
    manifest = _manifest(tmp_path / "m.jsonl", rows)
    parser = argparse.ArgumentParser()
    make_shards.add_arguments(parser)
    argv = ["--manifest", str(manifest), "--out", str(out), "--overwrite"]
    assert make_shards.run(parser.parse_args(argv), OVERRIDES) == 0
    captured = capsys.readouterr()
    assert f"skipped 3 (first: manifest {manifest} line 2: sample_rate" in captured.out
    skips = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skips) == 3 and "text.wav" in skips[1] and "6 wide" in skips[2]
    reader = ShardReader(out)
    assert [reader[i]["id"] for i in range(len(reader))] == ["g0", "g1", "g2"]
    assert reader.video_dim == 4 and _siblings(tmp_path) == []


def test_an_exception_mid_write_leaves_the_old_dataset_and_no_staging(tmp_path, old_dataset):
    out, before = old_dataset

    def fail(n):
        if n == 2:
            raise RuntimeError("injected")

    entries = read_manifest(tmp_path / "old.jsonl") * 2
    with pytest.raises(RuntimeError, match="injected"):
        write_shards(entries, out, RATE, overwrite=True, on_record=fail)
    assert _snapshot(out) == before and _siblings(tmp_path) == []


def test_output_refusals_write_nothing(tmp_path, old_dataset):
    out, before = old_dataset
    entries = read_manifest(tmp_path / "old.jsonl")
    with pytest.raises(StagingError, match="already holds a dataset"):
        write_shards(entries, out, RATE)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("keep me")
    with pytest.raises(StagingError, match="'notes.txt', which is not part of a shard dataset"):
        write_shards(entries, tmp_path / "mixed", RATE, overwrite=True)
    assert (tmp_path / "mixed" / "notes.txt").read_text() == "keep me"
    assert _snapshot(out) == before and _siblings(tmp_path) == _siblings(tmp_path, "mixed") == []
    # An empty existing directory is fine (and is what `mkdir out` before a run gives).
    (tmp_path / "empty").mkdir()
    assert write_shards(entries, tmp_path / "empty", RATE).written == 3
