"""separate()'s input preparation: audio loading, buckets, spans reaching the anchors, noise."""

import math

import jax
import numpy as np
import pytest
import soundfile

from samaudio_jax.sample import audio_io, batching

RATE, HOP = 8000, 16


def prepare(waves, spans=None, descriptions=None, video=None, tokenize=None):
    return batching.prepare_batch(
        waves,
        descriptions or ["x"] * len(waves),
        spans,
        video,
        sample_rate=RATE,
        hop_length=HOP,
        tokenize=tokenize,
    )


def test_positive_span_reaches_exactly_the_ceil_frames():
    waves = [np.zeros(4000, np.float32), np.zeros(2500, np.float32)]
    start, end = 0.1003, 0.2371
    batch = prepare(waves, spans=[[("+", start, end)], None])
    lo, hi = math.ceil(start * RATE / HOP), math.ceil(end * RATE / HOP)  # 51, 119
    assert (lo, hi) == (51, 119)
    align = batch.anchor_alignment
    assert batch.anchor_ids[0].tolist()[:3] == [0, 3, 1]
    assert np.flatnonzero(align[0] == 2).tolist() == list(range(lo, hi))
    assert np.all(align[0, : batch.frames[0]][align[0, : batch.frames[0]] != 2] == 0)
    # The second input has no span; its padded frames point at <pad> (index 1).
    assert batch.frames[1] == math.ceil(2500 / HOP)
    assert np.all(align[1, : batch.frames[1]] == 0) and np.all(align[1, batch.frames[1] :] == 1)


def test_negative_span_gets_the_minus_token():
    batch = prepare([np.zeros(800, np.float32)], spans=[[("-", 0.02, 0.05)]])
    assert batch.anchor_ids[0].tolist() == [0, 3, 2]
    assert np.flatnonzero(batch.anchor_alignment[0] == 2).tolist() == list(range(10, 25))


@pytest.mark.parametrize(
    ("span", "message"),
    [
        (("+", 0.2, 0.6), r"spans\[0\]\[0\]: end 0.6 s is past the audio's end"),
        (("+", 0.3, 0.3), r"spans\[0\]\[0\]: start 0.3 s must be before end"),
        (("+", -0.1, 0.2), "before the audio begins"),
        (("*", 0.1, 0.2), "sign must be"),
    ],
)
def test_bad_spans_are_refused_naming_the_span(span, message):
    with pytest.raises(ValueError, match=message):
        prepare([np.zeros(4000, np.float32)], spans=[[span]])


def test_lengths_are_bucketed_and_masks_mark_the_valid_frames():
    waves = [np.ones(100, np.float32), np.ones(337, np.float32)]
    batch = prepare(waves)
    assert batch.frames.tolist() == [7, 22]
    assert batch.valid.shape == (2, 24) and batch.waveforms.shape == (2, 24 * HOP)
    assert batch.valid.sum(1).tolist() == [7, 22]
    assert batch.waveforms[0, 100:].max() == 0 and batch.waveforms[1, :337].min() == 1
    sizes = {batching.bucket_frames(t) for t in range(1, 1001)}
    assert len(sizes) == 25  # 4 shapes an octave serve every length up to 40 s at 25 Hz
    assert all(batching.bucket_frames(t) < 1.26 * t for t in range(16, 1001))


def test_text_is_padded_to_a_bucket_and_video_to_the_frames():
    def tokenize(texts):
        ids = np.array([[5, 6, 7], [8, 0, 0]])
        return ids, ids > 0

    video = [np.ones((4, 7), np.float32), None]
    batch = prepare(
        [np.ones(100, np.float32), np.ones(50, np.float32)], video=video, tokenize=tokenize
    )
    assert batch.text_ids.shape == (2, batching.TEXT_BUCKET)
    assert batch.text_mask.sum(1).tolist() == [3, 1]
    assert batch.video.shape == (2, 4, 16)
    assert batch.video[0, :, :7].min() == 1 and batch.video[0, :, 7:].max() == 0
    assert batch.video[1].max() == 0
    with pytest.raises(ValueError, match=r"video_features\[0\]: expected \(features, 7\)"):
        prepare([np.ones(100, np.float32)], video=[np.ones((4, 9), np.float32)])


def test_noise_is_a_prefix_stable_sequence_per_item():
    key = jax.random.key(3)
    keys = batching.as_item_keys(key, 3)
    short = batching.candidate_noise(keys[1:2], 2, 10, 4)
    long = batching.candidate_noise(keys, 2, 24, 4)
    np.testing.assert_array_equal(np.asarray(long)[2:4, :10], np.asarray(short))
    assert not np.allclose(np.asarray(long)[2], np.asarray(long)[3, :, :])
    with pytest.raises(ValueError, match="key: expected one key or 3 per-item keys"):
        batching.as_item_keys(keys[:2], 3)


def test_audio_is_loaded_as_mono_at_the_codec_rate(tmp_path):
    t = np.arange(16000) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)], 1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 16000)
    wav = audio_io.load_audio(path, RATE)
    assert wav.shape == (8000,) and wav.dtype == np.float32
    expected = 0.75 * np.sin(2 * np.pi * 440 * np.arange(8000) / RATE)
    np.testing.assert_allclose(wav[200:-200], expected[200:-200], atol=2e-3)
    pair = audio_io.load_audio((stereo.T.astype(np.float32), 16000), RATE)
    np.testing.assert_allclose(pair, wav, atol=1e-4)


def test_bad_audio_is_refused_naming_the_input(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="garbage.wav.*not a readable audio file"):
        audio_io.load_audio(garbage, RATE)
    with pytest.raises(ValueError, match="missing.wav.*no such file"):
        audio_io.load_audio(tmp_path / "missing.wav", RATE)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1)), RATE)
    with pytest.raises(ValueError, match="empty audio"):
        audio_io.load_audio(empty, RATE)
    nan = np.ones(100, np.float32)
    nan[17] = np.nan
    with pytest.raises(ValueError, match=r"audios\[2\]: 1 non-finite samples .* sample 17"):
        audio_io.load_audio(nan, RATE, where="audios[2]")


def test_wav_writes_are_atomic_and_complete(tmp_path):
    wav = np.random.default_rng(0).normal(size=1234).astype(np.float32) * 0.1
    audio_io.write_wav(tmp_path / "out" / "a.wav", wav, RATE)
    back, rate = soundfile.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert rate == RATE
    np.testing.assert_array_equal(back, wav)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav"]


def test_persistent_compilation_cache_is_on_by_default(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (
        "import jax\n"
        "from samaudio_jax.sample.separate import enable_compilation_cache\n"
        "print(enable_compilation_cache(), jax.config.jax_compilation_cache_dir)\n"
    )
    env = dict(os.environ, PYTHONPATH=root, SAMAUDIO_JAX_CACHE_DIR=str(tmp_path / "xla"))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(tmp_path / "xla")] * 2
    assert (tmp_path / "xla").is_dir()


@pytest.mark.parametrize("sigma_min", [0.0, 0.05])
def test_clean_prediction_converts_to_the_flow_velocity(sigma_min):
    from samaudio_jax.sample.separate import velocity_from_clean

    rng = np.random.default_rng(4)
    x0, x1 = rng.normal(size=(2, 3, 6, 4))
    for t in (0.0, 0.3, 0.9):
        x_t = (1 - (1 - sigma_min) * t) * x0 + t * x1
        u = x1 - (1 - sigma_min) * x0
        np.testing.assert_allclose(
            np.asarray(velocity_from_clean(x1, x_t, t, sigma_min)), u, rtol=1e-5, atol=1e-5
        )
    # At t = 1 the denominator is held away from zero instead of dividing by it.
    assert np.isfinite(np.asarray(velocity_from_clean(x1, x1, 1.0))).all()


def test_options_defaults_are_the_schemas_and_unknown_options_are_named():
    from samaudio_jax.config_schema import default_config
    from samaudio_jax.sample.options import SeparateOptions

    # Separator.separate reads the config; separate() alone uses the dataclass: the same
    # (but for the prediction, which separate() alone reads from the model it is given).
    assert SeparateOptions.from_config(default_config()) == SeparateOptions(prediction="velocity")
    config = default_config()
    config.sample.steps, config.sample.compilation_cache_dir = 4, "none"
    config.model.prediction = "clean"
    got = SeparateOptions.from_config(config)
    assert (got.steps, got.cache_dir, got.prediction) == (4, None, "clean")
    with pytest.raises(TypeError, match="unknown option.s. stepz; known: atol, cache_dir"):
        SeparateOptions().replace(stepz=3)
    with pytest.raises(ValueError, match="solver 'euler' needs `steps` or `step_size`"):
        SeparateOptions(solver="euler", steps=None).resolve(None)


def test_a_call_leaves_jax_compilation_settings_as_it_found_them(tmp_path):
    import jax

    from samaudio_jax.sample.compile_cache import call_cache

    before = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    assert before[0] is None  # the test session sets no cache
    with call_cache(tmp_path / "xla") as folder:
        assert jax.config.jax_compilation_cache_dir == folder == str(tmp_path / "xla")
    after = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    assert after == before
    with call_cache("none") as folder:
        assert folder is None and jax.config.jax_compilation_cache_dir is None
