"""Visual prompts into the flow network: per-latent-frame features of a masked video reach
the network (its output changes), an example without video equals the no-video run, and
the batch features equal the tower run frame by frame."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from samaudio_jax.model.factory import build_flow, flow_arrays_from_state_dict
from samaudio_jax.vision import video as V
from samaudio_jax.vision.factory import load_vision_part, load_vision_tower
from samaudio_jax.vision.features import FrameEncoder, video_prompt_features
from tests.release_fixtures import random_release_state_dict, small_model_config, write_release_dir
from tests.vision_reference import SMALL_PE, random_visual_state, write_test_video

T = 12


@pytest.fixture(scope="module")
def encoder():
    # built from arrays (no per-op compilation of a random init)
    return FrameEncoder(
        load_vision_part(random_visual_state(SMALL_PE, seed=5), base=SMALL_PE).tower, 8
    )


def _video(seed: int, n: int = 8, fps: int = 10) -> V.Video:
    rng = np.random.default_rng(seed)
    return V.video_from_frames(rng.integers(0, 256, (n, 30, 50, 3), dtype=np.uint8), fps)


def _mask(n: int = 8) -> np.ndarray:
    mask = np.zeros((n, 30, 50), np.uint8)
    mask[:, :, :25] = 1
    return mask


def test_prompt_features_equal_the_tower_on_each_selected_masked_frame(encoder):
    video, mask = _video(0), _mask()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.8 s of video under 0.4 s / 0.48 s of audio: no warning
        feats = np.asarray(video_prompt_features(encoder, [video, video], [T, 10], T, [mask, None]))
    assert feats.shape == (2, SMALL_PE.output_dim, T)
    direct = np.asarray(encoder(V.masked_frames_for_latents(video, T, mask, image_size=40)))
    np.testing.assert_allclose(feats[0], direct.T, atol=1e-6)
    unmasked = np.asarray(encoder(V.masked_frames_for_latents(video, 10, image_size=40)))
    np.testing.assert_allclose(feats[1, :, :10], unmasked.T, atol=1e-6)
    assert np.all(feats[1, :, 10:] == 0)  # padding frames carry no video
    assert np.max(np.abs(feats[0] - feats[1])) > 1e-3  # the mask matters


def test_clip_features_embed_each_selected_video_frame_once(encoder):
    from samaudio_jax.vision.features import clip_features

    video, mask = _video(1, n=4, fps=4), _mask(4)  # 1 s of video, 4 frames
    seen = []

    class Counting:
        cfg = encoder.cfg

        def __call__(self, frames):
            seen.append(frames.shape[0])
            return encoder(frames)

    # 40 latent frames per second of audio: 10 latent frames per video frame.
    feats = np.asarray(clip_features(Counting(), video, 40, mask, hop_length=1, sample_rate=40))
    assert seen == [4]
    direct = np.asarray(
        encoder(
            V.masked_frames_for_latents(
                video, 40, mask, hop_length=1, sample_rate=40, image_size=40
            )
        )
    )
    np.testing.assert_allclose(feats, direct, atol=1e-6)
    assert len({tuple(np.round(r, 5)) for r in feats}) == 4


def test_video_features_reach_the_flow_network_and_absent_video_is_zeros(encoder):
    m = small_model_config(video_dim=SMALL_PE.output_dim)
    release = random_release_state_dict(m, seed=1)
    assert abs(release["align_masked_video.gate"][0]) > 0.1  # the release's init (0) hides video
    graphdef, state = nnx.split(build_flow(m, flow_arrays_from_state_dict(release, m)))

    @jax.jit
    def run(state, x, mix, t, feats):
        return nnx.merge(graphdef, state)(x, mix, None, None, t, masked_video_features=feats)

    feats = video_prompt_features(encoder, [_video(2), None], [T, T], T)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, T, m.out_channels)), jnp.float32)
    mix = jnp.asarray(rng.standard_normal((2, T, m.out_channels)), jnp.float32)
    t = jnp.asarray([0.3, 0.6])
    with_video = np.asarray(run(state, x, mix, t, feats))
    without = np.asarray(run(state, x, mix, t, None))
    assert np.max(np.abs(with_video[0] - without[0])) > 1e-3
    np.testing.assert_allclose(with_video[1], without[1], atol=1e-6)


def test_bad_prompt_batches_are_errors(encoder):
    with pytest.raises(ValueError, match="one entry per example"):
        video_prompt_features(encoder, [_video(0)], [T, T], T)
    with pytest.raises(ValueError, match=r"masks\[0\] is given but videos\[0\] is None"):
        video_prompt_features(encoder, [None], [T], T, [_mask()])


def test_vision_tower_loads_from_a_release_dir_and_checks_the_config(tmp_path):
    m = small_model_config(video_dim=SMALL_PE.output_dim)
    vision = {"vision_encoder." + k: v for k, v in random_visual_state(SMALL_PE).items()}
    src = write_release_dir(tmp_path, m, random_release_state_dict(m), extra=vision)
    tower = load_vision_tower(src, SMALL_PE)
    assert tower.cfg == SMALL_PE
    np.testing.assert_array_equal(
        np.asarray(tower.ln_pre.weight[...]), vision["vision_encoder.model.visual.ln_pre.weight"]
    )
    with pytest.raises(ValueError, match=r"vision.layers=3 in the config, 2 in the checkpoint"):
        load_vision_tower(src, dataclasses.replace(SMALL_PE, layers=3))


def test_video_features_cli_writes_the_clip_features(tmp_path, encoder):
    from samaudio_jax.cli.main import main

    m = small_model_config(video_dim=SMALL_PE.output_dim)
    vision = {"vision_encoder." + k: v for k, v in random_visual_state(SMALL_PE, seed=5).items()}
    release = write_release_dir(tmp_path / "rel", m, random_release_state_dict(m), extra=vision)
    video = _video(6)
    path = tmp_path / "clip.mkv"
    write_test_video(path, video.frames, 10)
    sizes = [
        f"--config.vision.{k}={getattr(SMALL_PE, k)}"
        for k in (
            "image_size",
            "patch_size",
            "width",
            "layers",
            "heads",
            "pool_heads",
        )
    ]
    # vision.output_dim follows model.video_dim (the flow network takes the tower's features)
    sizes.append(f"--config.model.video_dim={SMALL_PE.output_dim}")
    argv = ["video-features", "--video", str(path), "--out", str(tmp_path / "f.npy")]
    argv += ["--seconds", "0.4", f"--config.vision.checkpoint={release}", *sizes]
    assert main(argv) == 0
    got = np.load(tmp_path / "f.npy")
    assert got.shape == (10, SMALL_PE.output_dim)  # ceil(0.4 s * 25)
    expected = np.asarray(encoder(V.masked_frames_for_latents(video, 10, image_size=40)))
    np.testing.assert_allclose(got, expected, atol=1e-5)
