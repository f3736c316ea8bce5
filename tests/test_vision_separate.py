"""Separation with a visual prompt: the API's videos/masks and the CLI's --video/--mask give the
same result as separate() fed the tower's features directly; the features change the result;
bad video input is refused with a clear error.

Tiny config (frames codec at 8 kHz, hop 16: 500 latent frames/s), random weights with the
video gate opened, a random PE tower (tests/vision_reference.SMALL_PE), Euler with 2 steps.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import pytest
import soundfile

from configs.tiny import get_config
from samaudio_jax.cli import separate as separate_cli
from samaudio_jax.sample import loading
from samaudio_jax.state_dict_io import write_state_dict
from samaudio_jax.vision.features import per_input_video_features
from tests.vision_reference import SMALL_PE, random_visual_state, write_test_video

RATE = 8000
OPTS = dict(solver="euler", steps=2, cache_dir=None)
SIZES = ("image_size", "patch_size", "width", "layers", "heads", "pool_heads", "output_dim")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vision_separate")
    state = {"vision_encoder." + k: v for k, v in random_visual_state(SMALL_PE, seed=7).items()}
    write_state_dict(state, tmp / "vision.pt")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 30, 50, 3), dtype=np.uint8)
    mask = np.zeros_like(frames)
    mask[:, :, :25] = 255
    write_test_video(tmp / "clip.mkv", frames, 10)
    write_test_video(tmp / "mask.mkv", mask, 10)
    write_test_video(tmp / "short_mask.mkv", mask[:3], 10)
    soundfile.write(tmp / "mix.wav", rng.normal(size=2400).astype(np.float32) * 0.3, RATE)
    return tmp


@pytest.fixture(scope="module")
def separator(files):
    config = get_config()
    config.vision.checkpoint = str(files / "vision.pt")
    for k in SIZES:
        config.vision[k] = getattr(SMALL_PE, k)
    sep = loading.build_separator(config)
    sep.model.align_masked_video.gate[...] = jax.numpy.full((1,), 0.8)  # release init 0 hides it
    return sep


def _mix(files):
    return [soundfile.read(files / "mix.wav", dtype="float32")[0]]


@pytest.mark.slow
def test_videos_and_masks_equal_features_fed_directly_and_change_the_result(separator, files):
    mix, key = _mix(files), jax.random.key(3)
    via_api = separator.separate(
        mix, ["x"], videos=[files / "clip.mkv"], masks=[files / "mask.mkv"], key=key, **OPTS
    )
    frames = int(np.ceil(len(mix[0]) / 16))  # 150 latent frames
    feats = per_input_video_features(
        separator.frame_encoder(),
        [files / "clip.mkv"],
        [frames],
        [files / "mask.mkv"],
        hop_length=16,
        sample_rate=RATE,
    )
    assert feats[0].shape == (SMALL_PE.output_dim, frames)
    direct = separator.separate(mix, ["x"], None, feats, key=key, **OPTS)
    np.testing.assert_array_equal(via_api.target[0], direct.target[0])
    without = separator.separate(mix, ["x"], key=key, **OPTS)
    peak = np.abs(without.target[0]).max()
    assert np.abs(via_api.target[0] - without.target[0]).max() > 1e-3 * peak
    unmasked = separator.separate(mix, ["x"], videos=[files / "clip.mkv"], key=key, **OPTS)
    assert np.abs(via_api.target[0] - unmasked.target[0]).max() > 1e-4 * peak


def cli(argv):
    parser = argparse.ArgumentParser()
    separate_cli.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    return separate_cli.run(args, rest)


@pytest.mark.slow
def test_cli_video_and_mask_give_the_api_result(separator, files, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "load", lambda _: separator)
    out = tmp_path / "out"
    argv = ["--checkpoint", str(files), "--input", str(files / "mix.wav"), "--description", "x"]
    argv += ["--video", str(files / "clip.mkv"), "--mask", str(files / "mask.mkv")]
    argv += ["--out", str(out), "--no_plot", "--solver", "euler", "--steps", "2"]
    argv += ["--cache_dir", "none", "--seed", "5"]
    assert cli(argv) == 0
    got = soundfile.read(out / "target.wav", dtype="float32")[0]
    api = separator.separate(
        _mix(files),
        ["x"],
        videos=[files / "clip.mkv"],
        masks=[files / "mask.mkv"],
        key=jax.random.fold_in(jax.random.key(5), 0),
        **OPTS,
    )
    np.testing.assert_allclose(got, api.target[0], atol=1e-4)


def test_cli_refuses_bad_video_input(separator, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load", lambda _: separator)
    base = ["--checkpoint", str(files), "--input", str(files / "mix.wav"), "--description", "x"]
    base += ["--out", str(tmp_path), "--no_plot", "--cache_dir", "none"]
    assert cli(base + ["--mask", str(files / "mask.mkv")]) == 2
    assert "--mask: needs --video" in capsys.readouterr().err
    assert (
        cli(base + ["--video", str(files / "clip.mkv"), "--mask", str(files / "short_mask.mkv")])
        == 2
    )
    assert "short_mask.mkv: has 3 frames, the video 4" in capsys.readouterr().err
    (tmp_path / "bad.mp4").write_bytes(b"not a video" * 50)
    assert cli(base + ["--video", str(tmp_path / "bad.mp4")]) == 2
    assert "bad.mp4: not a readable video" in capsys.readouterr().err


def test_short_video_warns_and_still_separates(separator, files):
    mix = [np.zeros(8000, np.float32)]  # 1 s of audio, 0.4 s of video
    with pytest.warns(UserWarning, match="last frame is reused"):
        result = separator.separate(
            mix, ["x"], videos=[files / "clip.mkv"], key=jax.random.key(0), **OPTS
        )
    assert result.target[0].shape == (8000,)
