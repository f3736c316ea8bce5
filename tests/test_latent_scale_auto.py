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
