"""The demo config's sizes agree with each other, and on-device mixing makes valid mixtures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bench.demo_recipe import load_clips, mix_batch
from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.model import SAMAudioFlow


def test_demo_config_clip_is_whole_frames_and_model_stays_small():
    cfg = load_config("configs/demo.py", [])
    samples = round(cfg.data.segment_seconds * cfg.data.sample_rate)
    assert samples == round(cfg.data.synth.clip_seconds * cfg.data.sample_rate)
    assert samples % cfg.codec.hop_length == 0 and samples // cfg.codec.hop_length == 64
    assert cfg.model.latent_dim == cfg.codec.latent_dim == cfg.codec.hop_length
    assert cfg.model.text_dim == cfg.text.small.dim
    assert cfg.codec.sample_rate == cfg.data.sample_rate
    abstract = nnx.eval_shape(lambda: SAMAudioFlow(cfg.model, rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert 1.0e6 < count < 2.0e6  # the CPU time budget of the demo rests on this size


def test_mix_batch_sums_sources_of_different_classes_at_snr_in_range():
    # class c = unit-RMS sinusoids with FREQS[c] whole cycles per clip (circular shifts keep it)
    freqs = np.array([5, 20, 60])
    rng = np.random.default_rng(0)
    n = np.arange(256)
    phase = rng.uniform(0, 2 * np.pi, (3, 4, 1))
    clips = np.sqrt(2) * np.sin(2 * np.pi * freqs[:, None, None] * n / 256 + phase)
    batch = mix_batch(jax.random.key(0), jnp.asarray(clips, jnp.float32), 64, (-5.0, 5.0), True)
    mix, tgt, res, cls = (np.asarray(a) for a in batch)
    np.testing.assert_allclose(mix, tgt + res, atol=1e-5)
    tgt_freq = np.argmax(np.abs(np.fft.rfft(tgt)), -1)
    res_freq = np.argmax(np.abs(np.fft.rfft(res)), -1)
    np.testing.assert_array_equal(tgt_freq, freqs[cls])
    assert np.all(res_freq != tgt_freq) and np.all(np.isin(res_freq, freqs))
    snr = 10 * np.log10(np.sum(tgt**2, -1) / np.sum(res**2, -1))
    assert np.all(snr >= -5.0 - 1e-3) and np.all(snr <= 5.0 + 1e-3)
    assert snr.max() - snr.min() > 5.0  # drawn, not fixed
    assert set(np.unique(cls)) == {0, 1, 2}


def test_load_clips_groups_by_class_at_the_target_rms(tmp_path):
    classes = ("tone", "noise")
    write_synth_corpus(
        tmp_path, classes=classes, clip_seconds=0.064, train_per_class=3, test_per_class=1
    )
    clips = load_clips(tmp_path / "train", classes, -20.0)
    assert clips.shape == (2, 3, 512)
    rms_db = 20 * np.log10(np.sqrt(np.mean(clips**2, -1)))
    np.testing.assert_allclose(rms_db, -20.0, atol=1e-3)
    # noise clips have a much flatter spectrum than tones: classes were not mixed up
    flat = [np.mean(np.abs(np.diff(np.sign(c), axis=-1)) > 0) for c in clips]
    assert flat[1] > flat[0]
