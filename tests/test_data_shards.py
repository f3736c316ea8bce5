"""Shard writer and reader: audio files in, identical samples, metadata and spans out."""

import json

import numpy as np
import pytest
import soundfile as sf

from samaudio_jax.data.manifest import read_manifest
from samaudio_jax.data.shard_writer import ShardWriter, write_shards
from samaudio_jax.data.shards import PCM_SCALE, ShardReader

RATE = 8000
INT16_TOL = 0.5 / PCM_SCALE + 1e-7  # int16 storage: rounding to the nearest step


def _write_manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_roundtrip_wav_flac_ogg_mp3_keeps_samples_descriptions_and_spans(tmp_path):
    rng = np.random.default_rng(0)
    clips = {name: rng.uniform(-0.9, 0.9, 1000 + 37 * i) for i, name in enumerate("abcd")}
    formats = {
        "a": ("wav", "FLOAT"),
        "b": ("flac", "PCM_16"),
        "c": ("ogg", None),
        "d": ("mp3", None),
    }
    rows = []
    for name, audio in clips.items():
        ext, subtype = formats[name]
        sf.write(tmp_path / f"{name}.{ext}", audio, RATE, subtype=subtype)
        rows.append(
            {
                "path": f"{name}.{ext}",
                "description": f"  Sound {name.upper()}  ",
                "category": "sfx",
                "group": "song1" if name in "ab" else "",
                "spans": [[0.01, 0.05], [0.06, 0.1]],
            }
        )
    manifest = _write_manifest(tmp_path / "m.jsonl", rows)
    summary = write_shards(read_manifest(manifest), tmp_path / "out", sample_rate=RATE)
    assert (summary.written, summary.skipped) == (4, 0)
    reader = ShardReader(tmp_path / "out")
    assert len(reader) == 4
    for i, name in enumerate("abcd"):
        rec = reader[i]
        assert rec["description"] == f"sound {name}"
        assert rec["spans"] == [[0.01, 0.05], [0.06, 0.1]]
        assert rec["group"] == ("song1" if name in "ab" else "")
        assert rec["category"] == "sfx"
        decoded, _ = sf.read(tmp_path / f"{name}.{formats[name][0]}", dtype="float32")
        assert rec["audio"].dtype == np.float32
        # Every format: what soundfile decodes, clipped to full scale (lossy codecs
        # overshoot), within int16 steps.
        assert rec["audio"].shape == decoded.shape
        np.testing.assert_allclose(rec["audio"], np.clip(decoded, -1, 1), rtol=0, atol=INT16_TOL)
        if name == "a":  # float WAV holds the input exactly
            np.testing.assert_allclose(rec["audio"], clips[name], rtol=0, atol=INT16_TOL)
        if name == "b":  # 16-bit FLAC: the file's own step plus ours
            np.testing.assert_allclose(rec["audio"], clips[name], rtol=0, atol=2 * INT16_TOL)


def test_csv_manifest_stereo_to_mono_and_resampling_match_analytic_sine(tmp_path):
    t16 = np.arange(16000) / 16000
    left = 0.5 * np.sin(2 * np.pi * 440 * t16)
    right = 0.3 * np.sin(2 * np.pi * 440 * t16)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    (tmp_path / "m.csv").write_text(
        'path,description,category,spans\nst.wav,a tone,instrument,"0.1:0.2;0.3:0.5"\n'
    )
    entries = read_manifest(tmp_path / "m.csv")
    assert entries[0].spans == ((0.1, 0.2), (0.3, 0.5))
    write_shards(entries, tmp_path / "out", sample_rate=RATE)
    rec = ShardReader(tmp_path / "out")[0]
    t8 = np.arange(8000) / 8000
    expected = 0.4 * np.sin(2 * np.pi * 440 * t8)  # mean of the channels, at 8 kHz
    assert rec["audio"].shape == (8000,)
    inner = slice(200, -200)  # away from the resampler's edge transients
    np.testing.assert_allclose(rec["audio"][inner], expected[inner], atol=2e-3)


def test_shards_are_bounded_and_index_lists_every_record(tmp_path):
    rows = []
    for i in range(12):
        sf.write(tmp_path / f"{i}.wav", np.full(2000, 0.01 * i), RATE, subtype="FLOAT")
        rows.append({"path": f"{i}.wav", "description": f"clip {i}", "id": f"c{i}"})
    manifest = _write_manifest(tmp_path / "m.jsonl", rows)
    summary = write_shards(read_manifest(manifest), tmp_path / "out", RATE, max_shard_bytes=9000)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert summary.shards == len(index["shards"]) >= 3
    assert all(s["bytes"] <= 9000 for s in index["shards"])
    assert sum(s["num_records"] for s in index["shards"]) == 12
    reader = ShardReader(tmp_path / "out")
    assert [reader[i]["id"] for i in range(12)] == [f"c{i}" for i in range(12)]
    for i in range(12):
        np.testing.assert_allclose(reader[i]["audio"], 0.01 * i, atol=INT16_TOL)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_reader_pickles_without_open_handles_and_reads_after_unpickling(tmp_path):
    import pickle

    sf.write(tmp_path / "x.wav", np.linspace(-0.5, 0.5, 100), RATE, subtype="FLOAT")
    manifest = _write_manifest(tmp_path / "m.jsonl", [{"path": "x.wav", "description": "x"}])
    write_shards(read_manifest(manifest), tmp_path / "out", RATE)
    reader = ShardReader(tmp_path / "out")
    first = reader[0]["audio"]
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone[0]["audio"], first)


def test_existing_dataset_is_not_overwritten_without_flag(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(10) + 0.1, RATE, subtype="FLOAT")
    manifest = _write_manifest(tmp_path / "m.jsonl", [{"path": "x.wav", "description": "x"}])
    write_shards(read_manifest(manifest), tmp_path / "out", RATE)
    with pytest.raises(ValueError, match="already holds a dataset"):
        write_shards(read_manifest(manifest), tmp_path / "out", RATE)
    write_shards(read_manifest(manifest), tmp_path / "out", RATE, overwrite=True)
    assert len(ShardReader(tmp_path / "out")) == 1


def test_writer_clears_only_its_own_leftovers(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("shard-00000.array_record.tmp", "shard-00003.array_record", "index.json.tmp"):
        (out / name).write_bytes(b"partial")
    (out / "notes.txt").write_text("mine")
    (out / "other.array_record").write_bytes(b"someone else's")
    with ShardWriter(out, RATE) as w:
        w.add({"id": "a", "description": "a"}, np.zeros(10))
    assert sorted(p.name for p in out.iterdir()) == [
        "index.json",
        "notes.txt",
        "other.array_record",
        "shard-00000.array_record",
    ]
    assert len(ShardReader(out)) == 1
