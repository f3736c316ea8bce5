"""Plots of a separation: spectrogram pictures of mixture, target and residual, drawn for
`samaudio-jax separate` and the demo (beside the evaluation, which scores the same three)."""

from __future__ import annotations

from samaudio_jax.io_atomic import atomic_write_stream
from samaudio_jax.paths import Path


def spectrogram_db(wav, nfft: int, hop: int, floor: float = 1e-12):
    """Power spectrogram in dB (F, T) of a mono waveform: Hann-windowed frames of `nfft`
    samples every `hop`, power floored at `floor` so that silence gives a finite value."""
    import numpy as np

    wav = np.asarray(wav, np.float64).reshape(-1)
    if wav.size < nfft:
        wav = np.pad(wav, (0, nfft - wav.size))
    count = 1 + (wav.size - nfft) // hop
    frames = wav[np.arange(nfft)[None, :] + hop * np.arange(count)[:, None]]
    power = np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=-1)) ** 2
    return 10.0 * np.log10(np.maximum(power, floor)).T


def save_spectrograms(path: Path, mixture, target, residual, sample_rate: int) -> None:
    """A PNG with the spectrograms of mixture, target and residual (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    nfft = 512 if sample_rate >= 16000 else 256
    panels = [(wav, spectrogram_db(wav, nfft, nfft // 2)) for wav in (mixture, target, residual)]
    # One colour scale for all three, 100 dB deep; silence (the -120 dB floor) is darkest.
    top = max(max(float(db.max()) for _, db in panels), -20.0)
    for ax, (wav, db), title in zip(axes, panels, ("mixture", "target", "residual")):
        seconds = max(np.asarray(wav).size, nfft) / sample_rate
        ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0.0, seconds, 0.0, sample_rate / 2),
            vmin=top - 100.0,
            vmax=top,
        )
        ax.set_title(title)
        ax.set_ylabel("Hz")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    try:
        atomic_write_stream(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)
