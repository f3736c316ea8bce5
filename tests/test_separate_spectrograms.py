"""The separate CLI's spectrogram PNG: the dB spectrogram matches scipy's STFT, and exact
digital silence plots without any warning (no log of zero) into a real, non-blank image."""

import warnings

import numpy as np
import pytest
import scipy.signal
from matplotlib import image as mpimg

from samaudio_jax.eval.plots import save_spectrograms, spectrogram_db


@pytest.mark.parametrize("n", [3000, 200])  # 200 < nfft: zero-padded to one frame
def test_spectrogram_db_matches_scipy_stft_power(n):
    nfft, hop = 256, 128
    rng = np.random.default_rng(0)
    wav = rng.normal(size=n).astype(np.float32)
    wav[n // 3 :] = 0.0  # silent tail: floored, not -inf
    window = np.hanning(nfft)
    padded = np.pad(wav.astype(np.float64), (0, max(0, nfft - n)))
    _, _, z = scipy.signal.stft(
        padded,
        window=window,
        nperseg=nfft,
        noverlap=nfft - hop,
        detrend=False,
        boundary=None,
        padded=False,
        scaling="spectrum",
    )
    power = np.abs(z * window.sum()) ** 2
    expected = 10 * np.log10(np.maximum(power, 1e-12))
    got = spectrogram_db(wav, nfft, hop)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.isfinite(got).all()
    if n > 2 * nfft:  # frames wholly inside the silent tail sit exactly at the floor
        assert got[:, -1].max() == pytest.approx(-120.0)


def test_silent_audio_plots_without_warnings(tmp_path):
    rate = 8000
    t = np.arange(2 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    tone[rate // 2 : rate] = 0.0  # an exactly silent stretch inside the mixture
    silence = np.zeros_like(tone)  # a fully silent target
    path = tmp_path / "spectrograms.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_spectrograms(path, tone, silence, tone, rate)
    image = mpimg.imread(path)
    assert image.shape[:2] == (700, 1000)  # figsize (10, 7) at 100 dpi
    colours = np.unique(image.reshape(-1, image.shape[-1]).round(3), axis=0)
    assert len(colours) > 50  # axes, labels and the magma map: not a blank image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spectrograms.png"]  # no temp file
