"""Separation metrics agree with torchmetrics and respect masks."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.audio import (
    scale_invariant_signal_distortion_ratio,
    signal_noise_ratio,
)

from samaudio_jax.eval import metrics


@pytest.fixture
def signals():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(4, 2000))
    est = 0.7 * ref + 0.3 * rng.normal(size=(4, 2000)) + 0.05
    return ref, est


def test_si_sdr_matches_torchmetrics(signals):
    ref, est = signals
    expected = scale_invariant_signal_distortion_ratio(
        torch.tensor(est), torch.tensor(ref), zero_mean=True
    )
    np.testing.assert_allclose(metrics.si_sdr(ref, est), expected.numpy(), rtol=1e-6)


def test_sdr_matches_torchmetrics_snr(signals):
    ref, est = signals
    expected = signal_noise_ratio(torch.tensor(est), torch.tensor(ref), zero_mean=False)
    np.testing.assert_allclose(metrics.sdr(ref, est), expected.numpy(), rtol=1e-6)


def test_si_sdr_ignores_scale_and_masked_tail(signals):
    ref, est = signals
    mask = np.ones_like(ref, bool)
    mask[:, 1500:] = False
    garbage = est.copy()
    garbage[:, 1500:] = 1e3
    short = metrics.si_sdr(ref[:, :1500], est[:, :1500])
    np.testing.assert_allclose(metrics.si_sdr(ref, 3.0 * garbage, mask), short, rtol=1e-9)


def test_improvement_is_zero_for_the_mixture_itself(signals):
    ref, est = signals
    np.testing.assert_allclose(metrics.si_sdr_improvement(ref, est, est), 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        metrics.si_sdr(ref, est[:, :10])
