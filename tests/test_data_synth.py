"""The synthetic corpus: deterministic from its seed, distinct classes, disjoint splits."""

import argparse

import numpy as np
import pytest

from samaudio_jax.cli import synth as synth_cli
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import SOUND_CLASSES, synth_event, write_synth_corpus

RATE = 8000


def _all(reader):
    return [reader[i] for i in range(len(reader))]


def test_same_seed_gives_identical_corpus_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_synth_corpus(tmp_path / name, seed=seed, train_per_class=2, test_per_class=1)
    a, b, c = (_all(ShardReader(tmp_path / n / "train")) for n in "abc")
    assert [r["id"] for r in a] == [r["id"] for r in b] == [r["id"] for r in c]
    assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b, strict=True))
    assert all(x["spans"] == y["spans"] for x, y in zip(a, b, strict=True))
    assert not any(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, c, strict=True))


def test_splits_counts_descriptions_and_spans(tmp_path):
    classes = ("tone", "chord", "sweep", "clicks", "noise", "pulse", "note")
    summaries = write_synth_corpus(
        tmp_path, classes=classes, train_per_class=3, test_per_class=2, clip_seconds=0.5
    )
    assert summaries["train"].written == 21 and summaries["test"].written == 14
    train, test = _all(ShardReader(tmp_path / "train")), _all(ShardReader(tmp_path / "test"))
    assert {r["description"] for r in train} == {SOUND_CLASSES[c].description for c in classes}
    assert len({r["description"] for r in train}) == len(classes)  # one text per class
    train_audio = {r["audio"].tobytes() for r in train}
    assert not any(r["audio"].tobytes() in train_audio for r in test)
    for r in train + test:
        assert r["audio"].shape == (4000,)
        ((start, end),) = r["spans"]
        inside = r["audio"][int(np.ceil(start * RATE)) : int(end * RATE)]
        outside = np.concatenate(
            [r["audio"][: int(start * RATE)], r["audio"][int(np.ceil(end * RATE)) :]]
        )
        assert np.all(outside == 0) and np.abs(inside).max() > 0.05
        assert np.abs(r["audio"]).max() <= 1.0


def _spectral_centroid(x):
    mag = np.abs(np.fft.rfft(x))
    return float((mag * np.fft.rfftfreq(len(x), 1 / RATE)).sum() / mag.sum())


def test_classes_differ_in_spectrum_and_temporal_structure():
    rng = np.random.default_rng(0)
    n = RATE
    tone = synth_event("tone", n, RATE, rng)
    noise = synth_event("noise", n, RATE, rng)
    clicks = synth_event("clicks", n, RATE, rng)
    sweep = synth_event("sweep", n, RATE, rng)
    # A tone's energy sits in one bin; white noise spreads over the band.
    tone_mag = np.abs(np.fft.rfft(tone))
    assert tone_mag.max() ** 2 / (tone_mag**2).sum() > 0.3
    noise_mag = np.abs(np.fft.rfft(noise))
    assert noise_mag.max() ** 2 / (noise_mag**2).sum() < 0.01
    # Clicks are sparse in time; a sweep's frequency rises.
    assert np.mean(np.abs(clicks) > 0.01) < 0.1
    assert _spectral_centroid(sweep[n // 2 :]) > 1.5 * _spectral_centroid(sweep[: n // 2])
    with pytest.raises(ValueError, match="unknown sound class 'drum'"):
        synth_event("drum", n, RATE, rng)


def test_synth_cli_writes_train_and_test_from_config(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--seed", "3"])
    overrides = [
        "--config.data.sample_rate=8000",
        "--config.data.synth.train_per_class=2",
        "--config.data.synth.test_per_class=1",
        "--config.data.synth.classes=('tone', 'noise')",
    ]
    assert synth_cli.run(args, overrides) == 0
    assert "synth train: wrote 4 examples" in capsys.readouterr().out
    train = ShardReader(tmp_path / "train")
    assert len(train) == 4 and len(ShardReader(tmp_path / "test")) == 2
    assert train.sample_rate == 8000
