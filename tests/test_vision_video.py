"""Video frames at the latent rate: nearest-timestamp selection, masks, preprocessing, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from samaudio_jax.vision import video as V
from tests.vision_reference import torchvision_resize, vision_python_or_skip, write_test_video

SIZE = 28  # frames already at the tower's size: the bicubic resize is then the identity


def _levels(n: int) -> np.ndarray:
    return (10 + 20 * np.arange(n)).astype(np.uint8)


def _uniform_frames(n: int) -> np.ndarray:
    return np.broadcast_to(_levels(n)[:, None, None, None], (n, SIZE, SIZE, 3)).copy()


def _level_of(frames) -> np.ndarray:
    """Mean pixel value (0..255) of each preprocessed frame."""
    x = np.asarray(frames)
    return (x * 0.5 + 0.5).reshape(len(x), -1).mean(axis=1) * 255.0


def test_nearest_frame_indices_match_a_brute_force_search():
    rng = np.random.default_rng(0)
    frame_times = np.sort(rng.uniform(0, 3, 40))
    query = np.concatenate([rng.uniform(-0.5, 4, 200), frame_times[:5]])
    got = V.nearest_frame_indices(frame_times, query)
    for q, i in zip(query, got):
        best = min(range(len(frame_times)), key=lambda j: (abs(q - frame_times[j]), j))
        assert i == best


def test_ties_go_to_the_earlier_frame():
    assert list(V.nearest_frame_indices(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5]))) == [0, 1]


def test_decoded_video_frames_are_chosen_by_nearest_timestamp(tmp_path):
    fps, n = 10, 12
    path = tmp_path / "clip.mkv"
    write_test_video(path, _uniform_frames(n), fps)
    video = V.read_video(path)
    np.testing.assert_allclose(video.timestamps, np.arange(n) / fps, atol=1e-3)
    assert video.frames.shape == (n, SIZE, SIZE, 3)
    t = 30  # 1.2 s at 25 latent frames/s
    frames = V.masked_frames_for_latents(path, t, image_size=SIZE)
    assert frames.shape == (t, SIZE, SIZE, 3)
    # latent k sits at k / 25 s = frame position 0.4 k (never a tie)
    expected = np.minimum(np.round(0.4 * np.arange(t)).astype(int), n - 1)
    np.testing.assert_allclose(_level_of(frames), _levels(n)[expected], atol=1e-3)


def test_masks_zero_the_masked_pixels_of_the_frame_each_latent_frame_uses():
    fps, n, t = 10, 12, 30
    frames = _uniform_frames(n)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        masks[i, :, 2 * i : 2 * i + 2] = 255  # frame i hides columns 2i, 2i+1
    video = V.video_from_frames(frames, fps)
    out = np.asarray(V.masked_frames_for_latents(video, t, masks, image_size=SIZE))
    expected = np.minimum(np.round(0.4 * np.arange(t)).astype(int), n - 1)
    for k, i in enumerate(expected):
        hidden = np.zeros((SIZE, SIZE), bool)
        hidden[:, 2 * i : 2 * i + 2] = True
        np.testing.assert_allclose(out[k][hidden], -1.0)  # 0 after (x / 255 - 0.5) / 0.5
        np.testing.assert_allclose(out[k][~hidden], frames[i, 0, 0, 0] / 127.5 - 1.0, atol=1e-6)


def test_mask_video_file_masks_per_channel(tmp_path):
    fps, n = 10, 4
    frames = _uniform_frames(n)
    mask = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    mask[:, : SIZE // 2, :, 0] = 255  # red channel of the top half
    write_test_video(tmp_path / "v.mkv", frames, fps)
    write_test_video(tmp_path / "m.mkv", mask, fps)
    out = np.asarray(
        V.masked_frames_for_latents(tmp_path / "v.mkv", 10, tmp_path / "m.mkv", image_size=SIZE)
    )
    expected = V.apply_mask(frames, mask)[
        np.minimum(np.round(0.4 * np.arange(10)).astype(int), n - 1)
    ]
    np.testing.assert_allclose(out, expected / 127.5 - 1.0, atol=1e-6)
    assert np.all(out[:, : SIZE // 2, :, 0] == -1.0) and np.all(out[:, SIZE // 2 :, :, 0] > -1.0)


def test_preprocessing_resizes_and_normalises_to_minus_one_one():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    out = np.asarray(V.preprocess_frames(frames, 14))
    assert out.shape == (2, 14, 14, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0
    # values are k / 127.5 - 1 for integer k: rounded back to uint8 levels as torchvision does
    levels = (out + 1.0) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    # a uniform frame stays uniform
    flat = np.full((1, 40, 60, 3), 200, np.uint8)
    np.testing.assert_allclose(
        np.asarray(V.preprocess_frames(flat, 14)), 200 / 127.5 - 1.0, atol=1e-6
    )


def test_video_shorter_than_audio_warns_and_reuses_the_last_frame():
    n, fps = 5, 10  # 0.5 s of video
    video = V.video_from_frames(_uniform_frames(n), fps)
    with pytest.warns(UserWarning, match="last frame is reused for 12 latent frame"):
        out = V.masked_frames_for_latents(video, 25, image_size=SIZE)  # 1 s of audio
    levels = _level_of(out)
    np.testing.assert_allclose(levels[12:], _levels(n)[-1], atol=1e-3)  # 0.48 s on
    assert out.shape[0] == 25


def test_video_as_long_as_the_audio_does_not_warn():
    video = V.video_from_frames(_uniform_frames(10), 10)  # 1 s
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        V.masked_frames_for_latents(video, 25, image_size=SIZE)


def test_mask_with_another_frame_count_is_an_error():
    video = V.video_from_frames(_uniform_frames(6), 10)
    with pytest.raises(ValueError, match="mask: has 5 frames, the video 6"):
        V.masked_frames_for_latents(video, 10, np.zeros((5, SIZE, SIZE), np.uint8), image_size=SIZE)


def test_mask_with_another_frame_size_is_an_error(tmp_path):
    write_test_video(tmp_path / "v.mkv", _uniform_frames(4), 10)
    small = np.zeros((4, 14, 28, 3), np.uint8)
    write_test_video(tmp_path / "m.mkv", small, 10)
    with pytest.raises(ValueError, match=r"m\.mkv: frames are 14x28 \(HxW\), the video's 28x28"):
        V.masked_frames_for_latents(tmp_path / "v.mkv", 5, tmp_path / "m.mkv", image_size=SIZE)


def test_unreadable_or_missing_video_is_an_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match=r"bad\.mp4: not a readable video"):
        V.read_video(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        V.read_video(tmp_path / "missing.mp4")


@pytest.mark.slow
def test_resize_matches_torchvision_bicubic_on_uint8_frames():
    """The release preprocesses with torchvision's Resize(BICUBIC) (antialiased) on uint8."""
    python = vision_python_or_skip()
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:90, 0:120]
    smooth = 127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    frames = np.clip(smooth[None, ..., None] + rng.normal(0, 20, (2, 90, 120, 3)), 0, 255)
    frames = frames.astype(np.uint8)
    inputs = {"down_40": frames, "up_64": frames[:, :30, :40]}
    reference = torchvision_resize(python, inputs)
    for name, src in inputs.items():
        size = int(name.split("_")[1])
        ours = np.round((np.asarray(V.preprocess_frames(src, size)) + 1.0) * 127.5)
        assert np.max(np.abs(ours - reference[name].astype(np.float64))) <= 1.0, name


def test_write_video_is_lossless_atomic_and_checks_its_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 12, 20, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "clip.mkv"
    V.write_video(path, frames, 12.5)
    back = V.read_video(path)
    np.testing.assert_array_equal(back.frames, frames)
    np.testing.assert_allclose(np.diff(back.timestamps), 1 / 12.5, atol=1e-3)
    with pytest.raises(ValueError, match=r"clip2.mkv: frames must be uint8 \(N, H, W, 3\)"):
        V.write_video(tmp_path / "sub" / "clip2.mkv", frames.astype(np.float32), 10)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["clip.mkv"]  # no temp left
