"""Mixture consistency after separation (sample/consistency.py): the projection makes
target + residual == mixture with the smallest change, the masks stay in [0, 1] and
recover sources that occupy different bins, and `Separator.separate` applies the config's
mode (and rejects an unknown one)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from samaudio_jax.codec.frames import FrameDCTCodec, dct_matrix
from samaudio_jax.config_checks import ConfigError, validate_sample_fields
from samaudio_jax.sample import consistency
from samaudio_jax.sample.loading import build_separator
from tests.test_export_import import tiny_demo_config

RATE = 8000


def _pair(rng, n=2000):
    t = rng.standard_normal(n).astype(np.float32)
    r = rng.standard_normal(n).astype(np.float32)
    return t + r, t, r


def test_project_sums_to_the_mixture_and_moves_each_estimate_by_half_the_mismatch():
    rng = np.random.default_rng(0)
    m, t, r = _pair(rng)
    t_hat, r_hat = t + 0.3 * rng.standard_normal(t.shape), 0.5 * r
    t2, r2 = consistency.project(m, t_hat, r_hat)
    np.testing.assert_allclose(t2 + r2, m, atol=1e-5)
    np.testing.assert_allclose(t2 - t_hat, r2 - r_hat, atol=1e-5)  # equal shares
    t3, r3 = consistency.project(m, t, r)  # already consistent: unchanged
    np.testing.assert_allclose(t3, t, atol=1e-6)
    np.testing.assert_allclose(r3, r, atol=1e-6)


def test_wiener_mask_lies_in_unit_interval():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 64, 33)) * rng.uniform(0, 5, (2, 64, 33))
    b[:3] = 0.0
    a[:2] = 0.0  # both silent in 2 frames
    for power in (1.0, 2.0):
        mask = consistency.wiener_mask(a, b, power)
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        np.testing.assert_allclose(mask[:2], 0.5)
        np.testing.assert_allclose(mask[2], 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["ratio", "wiener"])
def test_masks_recover_sources_in_separate_codec_bins_from_rough_estimates(mode):
    hop = 64
    codec = FrameDCTCodec(RATE, hop)
    rng = np.random.default_rng(2)
    basis = dct_matrix(hop)  # rows: bins
    frames = 40
    ct = np.zeros((frames, hop))
    cr = np.zeros((frames, hop))
    ct[:, 3:20] = rng.standard_normal((frames, 17))  # target in low bins
    cr[:, 25:60] = rng.standard_normal((frames, 35))  # interferer in high bins
    t, r = (ct @ basis).reshape(-1), (cr @ basis).reshape(-1)
    m = (t + r).astype(np.float32)
    # Rough estimates: wrong gains and leakage, but each still dominated by its own bins.
    t_hat, r_hat = 0.6 * t + 0.05 * r, 1.7 * r + 0.05 * t
    t2, r2 = consistency.apply(mode, m, t_hat, r_hat, codec)
    np.testing.assert_allclose(t2 + r2, m, atol=1e-5)
    before = np.sum((t_hat - t) ** 2)
    after = np.sum((t2 - t) ** 2)
    assert after < 0.05 * before
    # In the STFT (any other codec) the sources' bins overlap, so only an improvement.
    t3, _ = consistency.apply(mode, m, t_hat, r_hat, codec=None)
    assert np.sum((t3 - t) ** 2) < before


def test_stft_of_the_fallback_reconstructs_exactly():
    x = np.random.default_rng(3).standard_normal(1234)
    np.testing.assert_allclose(consistency._istft(consistency._stft(x), len(x)), x, atol=1e-9)


def test_separator_applies_the_configs_mode_and_rejects_unknown_ones():
    config = tiny_demo_config()
    config.sample.steps = 1
    config.codec.latent_scale = ""  # unscaled frames (no training workdir to measure in)
    sep = build_separator(config, seed=0)
    rng = np.random.default_rng(4)
    mixes = [rng.standard_normal(800).astype(np.float32) * 0.1 for _ in range(2)]
    plain = sep.separate(mixes, ["a", "b"], key=jax.random.key(0))
    gap = max(np.abs(t + r - m).max() for t, r, m in zip(plain.target, plain.residual, mixes))
    assert gap > 1e-3  # an untrained network is not consistent by itself
    sep.config.sample.mixture_consistency = "project"
    out = sep.separate(mixes, ["a", "b"], key=jax.random.key(0))
    for t, r, m, t0 in zip(out.target, out.residual, mixes, plain.target):
        np.testing.assert_allclose(t + r, m, atol=1e-5)
        assert not np.allclose(t, t0)
    with pytest.raises(ValueError, match="mixture_consistency"):
        sep.separate(mixes, ["a", "b"], key=jax.random.key(0), mixture_consistency="median")
    sep.config.sample.mixture_consistency = "wiener2"
    with pytest.raises(ConfigError, match="config.sample.mixture_consistency"):
        validate_sample_fields(sep.config.sample)
