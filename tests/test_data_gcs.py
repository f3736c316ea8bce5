"""Datasets in a bucket, on a real GCS server (tests/storage_server.py, 127.0.0.1): make-shards
from a manifest in the bucket to a gs:// dataset, read back by the pipeline exactly as the
same dataset on local disk; --overwrite swaps on the bucket; synth writes to gs://."""

import argparse
import io
import json

import numpy as np
import soundfile as sf
from etils import epath

from samaudio_jax.cli import make_shards
from samaudio_jax.cli import synth as synth_cli
from samaudio_jax.config_schema import default_config
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset, open_split
from samaudio_jax.data.shards import ShardReader

RATE = 8000
OVERRIDES = ["--config.data.sample_rate=8000", "--config.data.max_shard_bytes=6000"]


def _wav_bytes(seconds: float, freq: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * freq * t), RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _put_corpus(root, n: int = 6) -> None:
    """n wav files under root/audio and root/m.jsonl naming them by relative path."""
    rows = []
    (root / "audio").mkdir(parents=True, exist_ok=True)  # a no-op on a bucket
    for i in range(n):
        (root / "audio" / f"{i}.wav").write_bytes(_wav_bytes(0.25 + 0.05 * i, 200.0 + 50 * i))
        rows.append({"path": f"audio/{i}.wav", "description": f"tone {i}", "id": f"c{i}"})
    rows.insert(2, {"path": "audio/missing.wav", "description": "gone"})
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _make_shards(manifest, out, *flags) -> int:
    parser = argparse.ArgumentParser()
    make_shards.add_arguments(parser)
    return make_shards.run(
        parser.parse_args(["--manifest", str(manifest), "--out", str(out), *flags]), OVERRIDES
    )


def _batches(source, count=3):
    config = PipelineConfig(sample_rate=RATE, segment_seconds=0.2, read_threads=2)
    it = iter(make_dataset(source, config, batch_size=2, seed=7))
    return [next(it) for _ in range(count)]


def test_make_shards_to_a_bucket_reads_back_as_the_local_dataset(
    gcs_server, gcs_bucket, tmp_path, capsys
):
    bucket = epath.Path(gcs_bucket)
    _put_corpus(bucket)
    _put_corpus(tmp_path)
    url = f"{gcs_bucket}/data/train"
    assert _make_shards(f"{gcs_bucket}/m.jsonl", url) == 0
    assert _make_shards(tmp_path / "m.jsonl", tmp_path / "data" / "train") == 0
    out = capsys.readouterr()
    assert (
        out.out.count("wrote 6 examples in") == 2 and "audio/missing.wav: no such file" in out.err
    )

    # Same files, byte for byte; only the dataset's objects are in the bucket (no staging).
    bucket_name = gcs_bucket.removeprefix("gs://")
    names = gcs_server.list_objects(bucket_name, "data/")
    local = sorted(p.name for p in (tmp_path / "data" / "train").iterdir())
    assert [n.removeprefix("data/train/") for n in names] == local and len(local) > 2
    for name in local:
        assert (
            gcs_server.read_object(bucket_name, f"data/train/{name}")
            == (tmp_path / "data" / "train" / name).read_bytes()
        )

    # The pipeline over data.dir=gs://... gives the batches it gives over the local copy.
    config = default_config()
    config.data.dir = f"{gcs_bucket}/data"
    remote = open_split(config.data, "train")
    assert isinstance(remote, ShardReader) and str(remote.directory) == url
    for got, want in zip(
        _batches(remote), _batches(ShardReader(tmp_path / "data" / "train")), strict=True
    ):
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)

    # --overwrite on the bucket: the new dataset is swapped in, the old objects are gone.
    (bucket / "m2.jsonl").write_text(
        json.dumps({"path": "audio/0.wav", "description": "only", "id": "only"}) + "\n"
    )
    assert _make_shards(f"{gcs_bucket}/m2.jsonl", url) == 1  # no --overwrite: refused
    assert "already holds a dataset" in capsys.readouterr().err
    assert _make_shards(f"{gcs_bucket}/m2.jsonl", url, "--overwrite") == 0
    reader = ShardReader(url)
    assert [reader[i]["id"] for i in range(len(reader))] == ["only"]
    names = gcs_server.list_objects(bucket_name, "data/")
    assert names == ["data/train/index.json", "data/train/shard-00000.array_record"]

    # An all-bad manifest leaves the bucket's dataset as it was.
    (bucket / "bad.jsonl").write_text(json.dumps({"path": "nope.wav", "description": "x"}) + "\n")
    assert _make_shards(f"{gcs_bucket}/bad.jsonl", url, "--overwrite") == 1
    assert "no record could be written" in capsys.readouterr().err
    assert gcs_server.list_objects(bucket_name, "data/") == names
    assert ShardReader(url)[0]["id"] == "only"


def test_synth_writes_its_splits_to_a_bucket(gcs_server, gcs_bucket, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    overrides = [
        "--config.data.sample_rate=8000",
        "--config.data.synth.train_per_class=2",
        "--config.data.synth.test_per_class=1",
        "--config.data.synth.classes=('tone', 'noise')",
        "--config.data.synth.clip_seconds=0.25",
    ]
    for out in (f"{gcs_bucket}/synth", str(tmp_path / "synth")):
        args = parser.parse_args(["--out", out, "--seed", "3", "--video"])
        assert synth_cli.run(args, overrides) == 0
    assert "synth train: wrote 4 examples" in capsys.readouterr().out
    bucket_name = gcs_bucket.removeprefix("gs://")
    for split in ("train", "test"):
        local = tmp_path / "synth" / split
        names = gcs_server.list_objects(bucket_name, f"synth/{split}/")
        assert [n.rsplit("/", 1)[1] for n in names] == sorted(p.name for p in local.iterdir())
        for name in names:
            assert (
                gcs_server.read_object(bucket_name, name)
                == (local / name.rsplit("/")[-1]).read_bytes()
            )
    remote = ShardReader(f"{gcs_bucket}/synth/train")
    assert len(remote) == 4
    np.testing.assert_array_equal(
        remote[3]["audio"], ShardReader(tmp_path / "synth" / "train")[3]["audio"]
    )
    # Its videos were uploaded, and decode from the bucket to the local run's frames.
    from samaudio_jax.vision.video import read_video

    videos = gcs_server.list_objects(bucket_name, "synth/videos/")
    assert len(videos) == 6 and videos[0] == "synth/videos/test/noise-00000.mkv"
    for name in (videos[0], videos[-1]):
        np.testing.assert_array_equal(
            read_video(f"{gcs_bucket}/{name}").frames,
            read_video(tmp_path / name).frames,
        )
    # A second run without --overwrite refuses in one line.
    assert synth_cli.run(parser.parse_args(["--out", f"{gcs_bucket}/synth"]), overrides) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("synth: error: ") and "already holds a dataset" in err
    assert len(err.splitlines()) == 1
