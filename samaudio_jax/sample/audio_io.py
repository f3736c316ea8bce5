"""Reading inputs for separation (any rate, any channels -> mono at the codec rate) and
writing results (atomic WAV writes). Paths may be URLs (gs://, s3://): a file is read into
memory and a result uploaded in one piece, with no local copy.

An input is a path (anything libsndfile reads), a numpy array at the codec's rate
((samples,) or (channels, samples)), or a pair (array, sample_rate). Multichannel audio is
averaged to mono; other rates are resampled with soxr (high quality).
"""

from __future__ import annotations

import io
import os

import numpy as np
import soundfile
import soxr

from samaudio_jax.io_atomic import atomic_write_stream
from samaudio_jax.paths import as_path
from samaudio_jax.waveforms import to_mono  # noqa: F401  (public name, kept here)

AudioInput = str | os.PathLike | np.ndarray | tuple[np.ndarray, int]


def resample(wav: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return wav
    return soxr.resample(wav, rate, target_rate, quality="HQ").astype(np.float32)


def load_audio(item: AudioInput, target_rate: int, where: str = "audio") -> np.ndarray:
    """One input as mono float32 at `target_rate`; ValueError naming `where` when unusable."""
    if isinstance(item, (str, os.PathLike)):
        path = as_path(item)
        where = f"{where} ({path})"
        if not path.is_file():
            raise ValueError(f"{where}: no such file")
        try:
            data, rate = soundfile.read(
                io.BytesIO(path.read_bytes()), dtype="float32", always_2d=True
            )
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
            raise ValueError(f"{where}: not a readable audio file ({err})") from None
        wav = to_mono(data.T, where)
    elif isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"{where}: expected (array, sample_rate), got a {len(item)}-tuple")
        wav, rate = to_mono(item[0], where), int(item[1])
        if rate <= 0:
            raise ValueError(f"{where}: sample rate must be positive, got {rate}")
    else:
        wav, rate = to_mono(item, where), target_rate
    if wav.size == 0:
        raise ValueError(f"{where}: empty audio (0 samples)")
    bad = ~np.isfinite(wav)
    if bad.any():
        raise ValueError(
            f"{where}: {int(bad.sum())} non-finite samples (NaN or inf), "
            f"first at sample {int(np.argmax(bad))}"
        )
    return resample(wav, rate, target_rate)


def write_wav(path: str | os.PathLike, wav: np.ndarray, sample_rate: int) -> None:
    """Writes a mono float32 WAV atomically (temporary name in the same folder, then rename)."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(wav, np.float32)
    atomic_write_stream(
        path, lambda f: soundfile.write(f, data, sample_rate, format="WAV", subtype="FLOAT")
    )
