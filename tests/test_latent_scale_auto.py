"""codec.latent_scale='auto' is `train`'s to resolve: the codec refuses the bare word with a
one-line hint, train without data names data.dir, and a resolved config points at
WORKDIR/latent_scale.npy, measured once and then read."""

from __future__ import annotations

import numpy as np
import pytest

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.codec import frames
from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.train.latent_scale import resolve_latent_scale


def test_auto_is_refused_by_the_codec_and_needs_data():
    with pytest.raises(ValueError, match="'auto' is measured by `train`"):
        frames.load_latent_scale("auto", 128)
    with pytest.raises(ValueError, match="'auto_global' is measured by `train`"):
        frames.load_latent_scale("auto_global", 128)
    config = load_config("configs/demo.py", ["--config.data.dir="])
    with pytest.raises(ValueError, match="data.dir"):
        resolve_latent_scale(config, "/nonexistent")


def test_resolved_once_then_read(tmp_path):
    data = tmp_path / "data"
    write_synth_corpus(data, seed=0, sample_rate=8000, clip_seconds=1.024, train_per_class=2)
    config = load_config("configs/demo.py", ["--config.train.global_batch_size=4"])
    config.data.dir = str(data)
    said = []
    resolved = resolve_latent_scale(config, tmp_path / "work", said.append)
    assert config.codec.latent_scale == "auto"  # the caller's config is left alone
    assert resolved.codec.latent_scale == str(tmp_path / "work" / "latent_scale.npy")
    scale = frames.load_latent_scale(resolved.codec.latent_scale, 128)
    assert scale.shape == (128,) and np.all(scale > 0) and "measured on 64" in said[0]
    again = resolve_latent_scale(config, tmp_path / "work", said.append)
    assert again.codec.latent_scale == resolved.codec.latent_scale and "before" in said[1]


def test_auto_global_is_one_rms_for_every_bin(tmp_path):
    data = tmp_path / "data"
    write_synth_corpus(data, seed=0, sample_rate=8000, clip_seconds=1.024, train_per_class=2)
    overrides = ["--config.train.global_batch_size=4"]
    per_bin = load_config("configs/demo.py", overrides)
    per_bin.data.dir = str(data)
    one = load_config("configs/demo.py", overrides + ["--config.codec.latent_scale=auto_global"])
    one.data.dir = str(data)
    a = frames.load_latent_scale(
        resolve_latent_scale(per_bin, tmp_path / "a").codec.latent_scale, 128
    )
    b = frames.load_latent_scale(resolve_latent_scale(one, tmp_path / "b").codec.latent_scale, 128)
    assert np.all(b == b[0]) and np.ptp(a) > 0
    np.testing.assert_allclose(b[0], np.sqrt(np.mean(a.astype(np.float64) ** 2)), rtol=1e-5)
