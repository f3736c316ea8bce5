"""Bad input to the shard writer and reader: clear errors naming the file; no partial data."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samaudio_jax.cli import make_shards
from samaudio_jax.data.manifest import ManifestError, read_manifest
from samaudio_jax.data.shard_writer import write_shards
from samaudio_jax.data.shards import AudioDecodeError, ShardError, ShardReader

RATE = 8000
REPO = Path(__file__).resolve().parents[1]


def _manifest(tmp_path, rows, name="m.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def bad_files(tmp_path):
    """name -> (manifest row, text the error must contain besides the path)."""
    sf.write(tmp_path / "good.wav", np.full(800, 0.25), RATE, subtype="FLOAT")
    sf.write(tmp_path / "at8k.wav", np.full(800, 0.25), RATE, subtype="FLOAT")
    sf.write(tmp_path / "at4k.wav", np.full(400, 0.25), 4000, subtype="FLOAT")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("this is a text file, not audio\n" * 20)
    (tmp_path / "truncated.wav").write_bytes((tmp_path / "good.wav").read_bytes()[:30])
    sf.write(tmp_path / "noframes.wav", np.zeros(0), RATE, subtype="FLOAT")
    return {
        "missing.wav": ({"path": "missing.wav", "description": "x"}, "no such file"),
        "empty.wav": ({"path": "empty.wav", "description": "x"}, "zero-length"),
        "notes.wav": ({"path": "notes.wav", "description": "x"}, "cannot decode"),
        "truncated.wav": ({"path": "truncated.wav", "description": "x"}, "cannot decode"),
        "noframes.wav": ({"path": "noframes.wav", "description": "x"}, "no samples"),
        "at8k.wav": (
            {"path": "at8k.wav", "description": "x", "sample_rate": 16000},
            "declares sample_rate 16000 but the file is 8000 Hz",
        ),
        "at4k.wav": ({"path": "at4k.wav", "description": "x"}, "below data.min_input_rate"),
    }


def test_each_bad_file_is_skipped_and_reported_by_path(tmp_path, bad_files):
    rows = [{"path": "good.wav", "description": "good"}] + [r for r, _ in bad_files.values()]
    log = []
    summary = write_shards(
        read_manifest(_manifest(tmp_path, rows)),
        tmp_path / "out",
        RATE,
        min_input_rate=8000,
        log=log.append,
    )
    assert (summary.written, summary.skipped) == (1, len(bad_files))
    for name, (_, reason) in bad_files.items():
        (line,) = [m for m in log if f"{tmp_path / name}:" in m]
        assert reason in line
    assert [ShardReader(tmp_path / "out")[0]["description"]] == ["good"]


@pytest.mark.parametrize(
    "name",
    [
        "missing.wav",
        "empty.wav",
        "notes.wav",
        "truncated.wav",
        "noframes.wav",
        "at8k.wav",
        "at4k.wav",
    ],
)
def test_strict_mode_raises_naming_the_file_and_leaves_no_index(tmp_path, bad_files, name):
    row, reason = bad_files[name]
    rows = [{"path": "good.wav", "description": "good"}, row]
    with pytest.raises(AudioDecodeError) as err:
        write_shards(
            read_manifest(_manifest(tmp_path, rows)),
            tmp_path / "out",
            RATE,
            strict=True,
            min_input_rate=8000,
        )
    assert str(tmp_path / name) in str(err.value) and reason in str(err.value)
    # Nothing at --out, and the staging directory beside it is gone.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []
    with pytest.raises(ShardError, match="no such shard directory"):
        ShardReader(tmp_path / "out")


@pytest.mark.parametrize(
    "row, message",
    [
        ({"path": "a.wav"}, "line 2: missing required field 'description'"),
        ({"description": "a dog"}, "line 2: missing required field 'path'"),
        ({"path": "a.wav", "description": "  "}, "line 2: missing required field 'description'"),
        ({"path": "a.wav", "description": "x", "category": "car"}, "category 'car' is not one"),
        ({"path": "a.wav", "description": "x", "spans": [[2, 1]]}, "spans[0] must have"),
        ({"path": "a.wav", "description": "x", "sample_rate": "fast"}, "sample_rate must be"),
    ],
)
def test_malformed_manifest_rows_name_manifest_line_and_field(tmp_path, row, message):
    path = _manifest(tmp_path, [{"path": "ok.wav", "description": "ok"}, row])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_csv_without_required_column_is_rejected(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,category\na.wav,sfx\n")
    with pytest.raises(
        ManifestError, match=r"m\.csv: CSV header lacks field\(s\) \['description'\]"
    ):
        read_manifest(path)


def test_cli_reports_counts_and_strict_failure_naming_the_file(tmp_path, bad_files, capsys):
    parser = argparse.ArgumentParser()
    make_shards.add_arguments(parser)
    rows = [{"path": "good.wav", "description": "good"}, bad_files["notes.wav"][0]]
    manifest = _manifest(tmp_path, rows)
    args = parser.parse_args(["--manifest", str(manifest), "--out", str(tmp_path / "o")])
    assert make_shards.run(args, ["--config.data.sample_rate=8000"]) == 0
    out = capsys.readouterr()
    assert "wrote 1 examples" in out.out and "skipped 1" in out.out
    assert str(tmp_path / "notes.wav") in out.err
    args = parser.parse_args(
        ["--manifest", str(manifest), "--out", str(tmp_path / "s"), "--strict"]
    )
    assert make_shards.run(args, ["--config.data.sample_rate=8000"]) == 1
    assert str(tmp_path / "notes.wav") in capsys.readouterr().err


KILLED_WRITER = """
import sys, time
from samaudio_jax.data.manifest import read_manifest
from samaudio_jax.data.shard_writer import write_shards

def pause(n):
    if n == 5:
        print("WROTE5", flush=True)
        time.sleep(60)

write_shards(read_manifest(sys.argv[1]), sys.argv[2], 8000, max_shard_bytes=4000,
             on_record=pause, overwrite=True)
"""


def test_killed_writer_leaves_nothing_that_reads_as_complete(tmp_path):
    """SIGKILL mid-write of an --overwrite run: the old dataset is intact, the half-written
    new one (beside it) has no index.json, and a later run replaces the old one."""
    rows = []
    for i in range(8):
        sf.write(tmp_path / f"{i}.wav", np.full(800, 0.1), RATE, subtype="FLOAT")
        rows.append({"path": f"{i}.wav", "description": f"clip {i}"})
    manifest = _manifest(tmp_path, rows)
    out = tmp_path / "out"
    write_shards(read_manifest(manifest)[:3], out, RATE)  # the old dataset
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(manifest), str(out)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.time() + 60
        assert proc.stdout.readline().strip() == b"WROTE5" and time.time() < deadline
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    old = ShardReader(out)
    assert len(old) == 3 and [old[i]["id"] for i in range(3)] == [
        r.id for r in read_manifest(manifest)[:3]
    ]
    (staging,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.new-")]
    names = sorted(p.name for p in staging.iterdir())
    assert "index.json" not in names
    assert any(n.endswith(".array_record.tmp") for n in names)  # the shard being written
    with pytest.raises(ShardError, match="no index.json"):
        ShardReader(staging)
    # A fresh run replaces the old dataset; it names the interrupted run's leftover.
    notes = []
    summary = write_shards(
        read_manifest(manifest), out, RATE, max_shard_bytes=4000, overwrite=True, log=notes.append
    )
    assert summary.written == 8 and len(ShardReader(out)) == 8
    assert any(str(staging) in n and "interrupted" in n for n in notes)
    assert not list(out.glob("*.tmp"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out.old-")]
