"""Visual-prompt features in the data path: float16 storage in shards (v1 still read), the
pipeline's crop at the audio's offset, make-shards running the PE-Core tower on real video
files, synth videos, and clear errors for bad video input."""

import argparse
import json
import math
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

from samaudio_jax.cli import make_shards
from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.data.manifest import ManifestError, read_manifest
from samaudio_jax.data.pipeline import (
    DatasetMismatchError,
    PipelineConfig,
    dataset_from_config,
    make_dataset,
    restore_iterator_state,
    save_iterator_state,
)
from samaudio_jax.data.shard_writer import ShardWriter, write_shards
from samaudio_jax.data.shards import FORMAT, FORMAT_VIDEO, PCM_SCALE, ShardReader
from samaudio_jax.data.video_features import VideoInputError
from tests.train_testlib import REPO
from tests.vision_reference import write_test_video

RATE, HOP = 8000, 16  # the tiny config: 500 latent frames/s
INT16_TOL = 0.5 / PCM_SCALE + 1e-7
TINY_VISION = ["--config.vision.enabled=true"]


def _tiny(extra=()):
    return load_config(REPO / "configs" / "tiny.py", list(extra))


def _manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _raw_header(reader, i) -> dict:
    data = reader._data_source()[i]
    (length,) = struct.unpack_from("<I", data, 0)
    return json.loads(data[4 : 4 + length])


# ---------------------------------------------------------------- shards


def test_shard_roundtrip_keeps_float16_features_bit_exact_and_describes_them(tmp_path):
    rng = np.random.default_rng(0)
    lengths = [1000, 777, 400]
    audio = [rng.uniform(-0.9, 0.9, n).astype(np.float32) for n in lengths]
    video = [rng.standard_normal((math.ceil(n / HOP), 12)).astype(np.float32) for n in lengths]
    with ShardWriter(tmp_path, RATE, video_hop_length=HOP) as w:
        w.add({"id": "a", "description": "a"}, audio[0], video[0])
        w.add({"id": "b", "description": "b"}, audio[1], video[1])
        w.add({"id": "c", "description": "c"}, audio[2])  # no video in a video dataset
    reader = ShardReader(tmp_path)
    assert reader.index["format"] == FORMAT_VIDEO
    assert reader.index["video"] == {
        "dim": 12,
        "dtype": "float16",
        "hop_length": HOP,
        "frame_rate": RATE / HOP,
    }
    assert (reader.video_dim, reader.video_hop_length) == (12, HOP)
    assert [r["video_frames"] for r in reader.records] == [63, 49, 0]
    for i in range(2):
        rec = reader[i]
        assert rec["video"].dtype == np.float16 and rec["video"].shape == video[i].shape
        expected = video[i].astype(np.float16)
        np.testing.assert_array_equal(rec["video"].view(np.uint16), expected.view(np.uint16))
        np.testing.assert_allclose(rec["audio"], audio[i], rtol=0, atol=INT16_TOL)
        assert _raw_header(reader, i)["video"] == {
            "shape": list(video[i].shape),
            "dtype": "float16",
        }
    rec = reader[2]
    assert "video" not in rec and "video" not in _raw_header(reader, 2)
    np.testing.assert_allclose(rec["audio"], audio[2], rtol=0, atol=INT16_TOL)


def test_audio_only_datasets_stay_format_v1_and_still_read(tmp_path):
    sf.write(tmp_path / "a.wav", np.full(500, 0.25), RATE, subtype="FLOAT")
    manifest = _manifest(tmp_path / "m.jsonl", [{"path": "a.wav", "description": "a"}])
    write_shards(read_manifest(manifest), tmp_path / "out", RATE, video_hop_length=HOP)
    reader = ShardReader(tmp_path / "out")
    assert reader.index["format"] == FORMAT and "video" not in reader.index
    assert reader.video_dim is None and "video_frames" not in reader.records[0]
    rec = reader[0]
    assert "video" not in rec and rec["audio"].shape == (500,)
    # A record written in the v1 layout (header + PCM to the end) decodes the same way.
    data = reader._data_source()[0]
    (length,) = struct.unpack_from("<I", data, 0)
    assert len(data) == 4 + length + 2 * 500


def test_writer_rejects_features_of_the_wrong_length_or_width(tmp_path):
    audio = np.zeros(100, np.float32)  # ceil(100 / 16) = 7 frames
    with pytest.raises(ValueError, match=r"'x': video features have 6 frames, expected 7"):
        with ShardWriter(tmp_path / "a", RATE, video_hop_length=HOP) as w:
            w.add({"id": "x"}, audio, np.zeros((6, 4)))
    assert not (tmp_path / "a" / "index.json").exists()
    with pytest.raises(ValueError, match=r"'y': video features are 5 wide, earlier records 4"):
        with ShardWriter(tmp_path / "b", RATE, video_hop_length=HOP) as w:
            w.add({"id": "x"}, audio, np.zeros((7, 4)))
            w.add({"id": "y"}, audio, np.zeros((7, 5)))


# ---------------------------------------------------------------- pipeline

DV = 6
LENGTHS = {0: 1000, 1: 1203, 2: 777, 3: 200, 4: 900}  # record 4 has no video; 3 is short


@pytest.fixture(scope="module")
def frame_coded(tmp_path_factory):
    """Records whose features say which frame and record they are: row t of record r is
    [t + 1, r + 1, -(t + 1), ...]; audio is white noise (a crop's offset is recoverable)."""
    root = tmp_path_factory.mktemp("frame_coded")
    rng = np.random.default_rng(1)
    audio = {}
    with ShardWriter(root, RATE, video_hop_length=HOP) as w:
        for r, n in LENGTHS.items():
            audio[r] = rng.uniform(-0.5, 0.5, n).astype(np.float32)
            feats = None
            if r != 4:
                t = np.arange(math.ceil(n / HOP), dtype=np.float32)[:, None] + 1
                feats = np.concatenate(
                    [t, np.full_like(t, r + 1), -t, np.tile(t / 64, (1, DV - 3))], axis=1
                )
            w.add({"id": str(r), "description": f"sound {r}"}, audio[r], feats)
    return ShardReader(root), audio


VCFG = PipelineConfig(sample_rate=RATE, segment_seconds=0.05, min_sources=0, max_sources=0)


def _crop_offset(target, source):
    """The offset o at which target is a scaled copy of source[o : o + len(target)]."""
    n = len(target)
    t = target / np.linalg.norm(target)
    errs = [
        np.linalg.norm(t - source[o : o + n] / np.linalg.norm(source[o : o + n]))
        for o in range(len(source) - n + 1)
    ]
    best = int(np.argmin(errs))
    assert errs[best] < 1e-3, errs[best]
    return best


def test_pipeline_crops_video_features_at_the_audio_offset(frame_coded):
    reader, audio = frame_coded
    n = VCFG.segment_samples  # 400 samples = 25 frames
    frames = math.ceil(n / HOP)
    it = iter(make_dataset(reader, VCFG, batch_size=5, seed=3))
    offsets = set()
    for _ in range(4):
        b = next(it)
        assert b["video"].shape == (5, DV, frames) and b["video"].dtype == np.float32
        assert b["has_video"].dtype == np.bool_
        for row, r in enumerate(int(i) for i in b["index"]):
            length = min(n, LENGTHS[r])
            target = b["target"][row, :length]
            offset = _crop_offset(target, audio[r])
            assert offset % HOP == 0  # whole latent frames
            offsets.add((r, offset))
            v = b["video"][row]
            if r == 4:
                assert not b["has_video"][row] and np.all(v == 0)
                continue
            assert b["has_video"][row]
            used = math.ceil(length / HOP)
            src = np.arange(used) + offset // HOP  # source frame of each segment frame
            np.testing.assert_array_equal(v[0, :used], src + 1)
            np.testing.assert_array_equal(v[1, :used], np.full(used, r + 1))
            np.testing.assert_array_equal(v[2, :used], -(src + 1))
            assert np.all(v[:, used:] == 0)  # padding frames (record 3 is 13 frames long)
    assert len({o for r, o in offsets if r in (0, 1)}) > 2  # crops do move


def test_pipeline_resume_with_video_is_exact(frame_coded, tmp_path):
    reader, _ = frame_coded

    def fresh():
        return iter(make_dataset(reader, VCFG, batch_size=2, seed=7))

    ref = fresh()
    expected = [next(ref) for _ in range(6)]  # crosses epochs (5 records)
    it = fresh()
    for _ in range(3):
        next(it)
    save_iterator_state(it, tmp_path / "state.json")
    resumed = fresh()
    restore_iterator_state(resumed, tmp_path / "state.json")
    for got, want in zip([next(resumed) for _ in range(3)], expected[3:], strict=True):
        assert got.keys() == want.keys() and "video" in got
        for k in got:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_audio_only_pipeline_emits_no_video_keys(tmp_path):
    with ShardWriter(tmp_path, RATE) as w:
        w.add({"id": "a", "description": "a"}, np.full(900, 0.1, np.float32))
    b = next(iter(make_dataset(ShardReader(tmp_path), VCFG, batch_size=1)))
    assert "video" not in b and "has_video" not in b


def test_feature_width_must_match_model_video_dim(frame_coded):
    reader, _ = frame_coded
    config = _tiny([f"--config.data.dir={reader.directory}", "--config.data.segment_seconds=0.05"])
    with pytest.raises(DatasetMismatchError) as err:
        dataset_from_config(config)
    msg = str(err.value)
    assert str(reader.directory) in msg and "6 wide" in msg and "model.video_dim is 48" in msg
    config = _tiny(
        [
            f"--config.data.dir={reader.directory}",
            "--config.model.video_dim=6",
            "--config.codec.hop_length=32",
            "--config.codec.latent_dim=32",  # a frames codec has one latent per hop sample
        ]
    )
    with pytest.raises(DatasetMismatchError, match="one per 16 samples .* frames are 32 samples"):
        dataset_from_config(config)


# ---------------------------------------------------------------- make-shards


def _run_make_shards(manifest, out, overrides, strict=True):
    parser = argparse.ArgumentParser()
    make_shards.add_arguments(parser)
    argv = [
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--config",
        str(REPO / "configs/tiny.py"),
    ]
    return make_shards.run(parser.parse_args(argv + (["--strict"] if strict else [])), overrides)


def test_make_shards_stores_the_tower_features_of_each_masked_video(tmp_path):
    from samaudio_jax.vision.features import FrameEncoder, clip_features, random_tower
    from samaudio_jax.vision.pe import PEConfig

    rng = np.random.default_rng(2)
    lengths = {"a": 800, "b": 700, "c": 500, "d": 300}
    for name, n in lengths.items():
        sf.write(tmp_path / f"{name}.wav", rng.uniform(-0.5, 0.5, n), RATE, subtype="FLOAT")
    frames_a = rng.integers(0, 256, (10, 24, 40, 3), dtype=np.uint8)  # 0.1 s at 100 fps
    frames_b = rng.integers(0, 256, (4, 24, 40, 3), dtype=np.uint8)  # 0.04 s < 0.0875 s audio
    mask_b = np.zeros_like(frames_b)
    mask_b[:, :, :20] = 255
    (tmp_path / "v").mkdir()
    write_test_video(tmp_path / "v" / "a.mkv", frames_a, 100)
    write_test_video(tmp_path / "v" / "b.mkv", frames_b, 100)
    write_test_video(tmp_path / "v" / "b_mask.mkv", mask_b, 100)
    npy = rng.standard_normal((math.ceil(500 / HOP), 48)).astype(np.float32)
    np.save(tmp_path / "c.npy", npy)
    rows = [
        {"path": "a.wav", "description": "a", "video": "v/a.mkv"},
        {"path": "b.wav", "description": "b", "video": "v/b.mkv", "mask": "v/b_mask.mkv"},
        {"path": "c.wav", "description": "c", "video_features": "c.npy"},
        {"path": "d.wav", "description": "d"},
    ]
    manifest = _manifest(tmp_path / "m.jsonl", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _run_make_shards(manifest, tmp_path / "out", TINY_VISION) == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "RANDOMLY initialised" in messages  # no vision.checkpoint
    assert "b.mkv: video covers 0.040 s, audio 0.0" in messages  # short video: last frame reused

    reader = ShardReader(tmp_path / "out")
    assert (reader.video_dim, reader.video_hop_length) == (48, HOP)
    config = _tiny(TINY_VISION)
    encoder = FrameEncoder(random_tower(PEConfig.from_config(config.vision), int(config.seed)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = {
            "a": clip_features(encoder, tmp_path / "v/a.mkv", 50, hop_length=HOP, sample_rate=RATE),
            "b": clip_features(
                encoder,
                tmp_path / "v/b.mkv",
                44,
                tmp_path / "v/b_mask.mkv",
                hop_length=HOP,
                sample_rate=RATE,
            ),
        }
    for i, name in enumerate("ab"):
        got = reader[i]["video"].astype(np.float32)
        want = np.asarray(direct[name])
        assert got.shape == want.shape == (math.ceil(lengths[name] / HOP), 48)
        # float16 storage of unit-norm features: |error| <= 2^-11 * |x| < 5e-4
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    unmasked = np.asarray(
        clip_features(encoder, tmp_path / "v/b.mkv", 44, hop_length=HOP, sample_rate=RATE)
    )
    assert np.max(np.abs(unmasked - np.asarray(direct["b"]))) > 1e-2  # the mask was applied
    np.testing.assert_array_equal(reader[2]["video"], npy.astype(np.float16))
    assert "video" not in reader[3] and reader.records[3]["video_frames"] == 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "row, message",
    [
        ({"mask": "m.mkv"}, "line 1: mask is given without video"),
        ({"video": "v.mkv", "video_features": "f.npy"}, "line 1: give either video"),
        ({"video_features": "f.txt"}, "line 1: video_features must be a .npy file"),
        ({"video": 3}, "line 1: video must be a file path"),
    ],
)
def test_malformed_video_columns_name_the_manifest_line_and_field(tmp_path, row, message):
    path = _manifest(tmp_path / "m.jsonl", [{"path": "a.wav", "description": "a", **row}])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_manifest_video_paths_resolve_against_the_manifest_directory(tmp_path):
    rows = [{"path": "a.wav", "description": "a", "video": "v/a.mkv", "mask": "/abs/m.mkv"}]
    (entry,) = read_manifest(_manifest(tmp_path / "m.jsonl", rows))
    assert entry.video == str(tmp_path / "v" / "a.mkv") and entry.mask == "/abs/m.mkv"
    assert entry.has_video and entry.where == f"manifest {tmp_path / 'm.jsonl'} line 1"


def test_bad_video_or_feature_files_are_errors_naming_row_field_and_file(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", np.zeros(800), RATE, subtype="FLOAT")
    (tmp_path / "broken.mkv").write_text("not a video\n" * 10)
    np.save(tmp_path / "short.npy", np.zeros((20, 48), np.float32))
    manifest = tmp_path / "m.jsonl"
    cases = [
        ({"video": "broken.mkv"}, "video " + str(tmp_path / "broken.mkv"), "not a readable video"),
        ({"video": "gone.mkv"}, "video " + str(tmp_path / "gone.mkv"), "no such file"),
        (
            {"video_features": "short.npy"},
            "video_features " + str(tmp_path / "short.npy"),
            "shape (20, 48), expected (50, Dv)",
        ),
    ]
    for extra, field, reason in cases:
        _manifest(manifest, [{"path": "a.wav", "description": "a", **extra}])
        with pytest.raises(VideoInputError) as err:
            write_shards(
                read_manifest(manifest),
                tmp_path / "out",
                RATE,
                strict=True,
                video_hop_length=HOP,
                video_encoder=object(),  # never reached: the file fails first
            )
        msg = str(err.value)
        assert f"manifest {manifest} line 1" in msg and field in msg and reason in msg, msg
        assert not (tmp_path / "out" / "index.json").exists()
    # Not strict: the example is skipped and reported; the CLI names the config switch.
    bad = {"path": "a.wav", "description": "a", "video": "broken.mkv"}
    _manifest(manifest, [bad, {"path": "a.wav", "description": "b"}])
    assert _run_make_shards(manifest, tmp_path / "o2", TINY_VISION, strict=False) == 0
    err = capsys.readouterr().err
    assert "skipped manifest" in err and "broken.mkv" in err
    assert len(ShardReader(tmp_path / "o2")) == 1
    # Every row bad: an error, and no dataset (an empty one would read as complete).
    _manifest(manifest, [bad])
    assert _run_make_shards(manifest, tmp_path / "o4", TINY_VISION, strict=False) == 1
    assert "no record could be written" in capsys.readouterr().err
    assert not (tmp_path / "o4").exists()
    assert _run_make_shards(manifest, tmp_path / "o3", []) == 1
    assert "config.vision.enabled is false" in capsys.readouterr().err


# ---------------------------------------------------------------- synth


def test_synth_cli_videos_show_the_class_colour_while_the_event_sounds(tmp_path, capsys):
    from samaudio_jax.cli import synth as synth_cli
    from samaudio_jax.data.synth import BACKGROUND, CLASS_COLOURS
    from samaudio_jax.vision.features import FrameEncoder, clip_features, random_tower
    from samaudio_jax.vision.pe import PEConfig
    from samaudio_jax.vision.video import read_video, select_frames

    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path), "--video", "--config", str(REPO / "configs/tiny.py")]
    )
    overrides = [
        "--config.data.synth.classes=('tone', 'noise')",
        "--config.data.synth.train_per_class=2",
        "--config.data.synth.test_per_class=1",
        "--config.data.synth.clip_seconds=0.2",
        "--config.data.synth.video_size=16",
        "--config.data.synth.video_fps=50.0",
        *TINY_VISION,
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random tower
        assert synth_cli.run(args, overrides) == 0
    assert "synth train: wrote 4 examples" in capsys.readouterr().out
    reader = ShardReader(tmp_path / "train")
    assert (reader.video_dim, reader.video_hop_length) == (48, HOP)
    config = _tiny(TINY_VISION)
    encoder = FrameEncoder(random_tower(PEConfig.from_config(config.vision), int(config.seed)))
    for i, record in enumerate(reader.records):
        name, k = record["id"].split("/")[1:]
        path = tmp_path / "videos" / "train" / f"{name}-{k}.mkv"
        video = read_video(path)
        assert video.frames.shape == (10, 16, 16, 3)
        rec = reader[i]
        (start, end) = rec["spans"][0]
        active = (video.timestamps >= start) & (video.timestamps < end)
        centre = video.frames[:, 8, 8]
        np.testing.assert_array_equal(
            centre[active], np.tile(CLASS_COLOURS[name], (active.sum(), 1))
        )
        assert np.all(centre[~active] == BACKGROUND) and np.all(video.frames[:, 0, 0] == BACKGROUND)
        assert 0 < active.sum() < 10
        want = clip_features(encoder, path, 100, hop_length=HOP, sample_rate=RATE)
        np.testing.assert_allclose(rec["video"].astype(np.float32), np.asarray(want), atol=1e-3)
        # The features follow the square: latent frames that show it differ from those that don't.
        shown = active[select_frames(video, 100, HOP, RATE)]
        on = rec["video"][np.argmax(shown)].astype(np.float32)
        off = rec["video"][np.argmin(shown)].astype(np.float32)
        assert np.abs(on - off).max() > 1e-2


def test_tfds_dataset_carries_the_video_features_of_the_shards(frame_coded, tmp_path):
    import shutil

    from samaudio_jax.data.tfds_builder import load_tfds_source, prepare_tfds

    reader, _ = frame_coded
    shutil.copytree(reader.directory, tmp_path / "shards" / "train")
    prepare_tfds(tmp_path / "shards", tmp_path / "tfds")
    source = load_tfds_source(tmp_path / "tfds", "train")
    assert (source.video_dim, source.video_hop_length) == (DV, HOP)
    for i in range(len(reader)):
        want, got = reader[i].get("video"), source[i].get("video")
        if want is None:
            assert got is None
        else:
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got, want)
    from_tfds = iter(make_dataset(source, VCFG, batch_size=5, seed=3))
    from_shards = iter(make_dataset(reader, VCFG, batch_size=5, seed=3))
    for _ in range(2):
        a, b = next(from_tfds), next(from_shards)
        assert a.keys() == b.keys() and "video" in a
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
