"""Activity-aware crops: on clips with a known active interval (noise in [2.0, 2.5) s of
6 s of silence), no training crop and no held-out eval mixture holds less than
data.min_active_fraction of active target, whether the activity is measured or given as
manifest spans; with the fraction at 0 the plain uniform crops do hold silent segments
(so the check can fail), and eval states its crop policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.data import pipeline
from samaudio_jax.data.crops import active_crop_offset
from samaudio_jax.data.manifest import read_manifest
from samaudio_jax.data.shard_writer import write_shards
from samaudio_jax.eval import evaluate as ev

RATE = 8000
ACTIVE = (2.0, 2.5)  # seconds
FRACTION = 0.4  # of a 1.024 s segment: the 0.5 s interval can give at most ~49 %


def _clip(seed: int) -> np.ndarray:
    audio = np.zeros(6 * RATE, np.float32)
    lo, hi = (int(t * RATE) for t in ACTIVE)
    audio[lo:hi] = np.random.default_rng(seed).normal(0, 0.1, hi - lo)  # no exact zeros
    return audio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops")
    for split, seeds in (("train", (0, 1, 2, 3)), ("test", (4, 5, 6, 7))):
        rows = []
        for s in seeds:
            path = root / f"{split}_{s}.wav"
            sf.write(path, _clip(s), RATE, subtype="FLOAT")
            row = {"path": path.name, "description": f"sound {s % 2}", "category": "sfx"}
            if s % 4 == 3:  # this one's activity comes from the manifest, not measured
                row["spans"] = [list(ACTIVE)]
            rows.append(json.dumps(row))
        (root / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
        write_shards(read_manifest(root / f"{split}.jsonl"), root / split, RATE, log=lambda m: 0)
    return root


def _config(fraction: float):
    return load_config(
        "configs/demo_real.py",
        [f"--config.data.min_active_fraction={fraction}", "--config.data.snr_db=(0.0, 0.0)"],
    )


def _active(target: np.ndarray) -> float:
    return float(np.mean(target != 0))


def _training_fractions(dataset, fraction: float) -> list[float]:
    config = _config(fraction)
    config.data.dir = str(dataset)
    source = pipeline.open_split(config.data, "train")
    make = pipeline.MakeExample(source, pipeline.PipelineConfig.from_config(config.data))
    out = []
    for trial in range(60):
        example = make.random_map(trial % len(source), np.random.default_rng(trial))
        out.append(_active(example["target"]))
    return out


def test_training_crops_hold_the_configured_active_fraction(dataset):
    fractions = _training_fractions(dataset, FRACTION)
    assert min(fractions) >= FRACTION - 1e-9, min(fractions)
    plain = _training_fractions(dataset, 0.0)
    assert min(plain) < FRACTION and plain.count(0.0) > 5  # uniform crops are often silent


def test_eval_mixtures_hold_the_configured_active_fraction_and_state_the_policy(dataset):
    config = _config(FRACTION)
    mixtures = ev.heldout_mixtures(dataset, config.data, 40)
    assert len(mixtures[0].target) == round(config.data.segment_seconds * RATE)
    for m in mixtures:
        assert _active(m.target) >= FRACTION - 1e-9, (m.id, _active(m.target))
        assert m.active_fraction >= FRACTION - 1e-9
        assert _active(m.mixture - m.target) >= FRACTION - 1e-9  # the other source too
    plain = ev.heldout_mixtures(dataset, _config(0.0).data, 40)
    assert min(_active(m.target) for m in plain) < FRACTION

    class Identity:  # the mixture as the estimate
        def separate(self, audios, descriptions, key=None, max_batch=8):
            return type("R", (), {"target": list(audios)})()

    policy = ev.crop_policy(config.data)
    summary = ev.evaluate(Identity(), mixtures, crop=policy)
    assert summary["crop_policy"]["min_active_fraction"] == FRACTION
    assert summary["overall"]["active_fraction_min"] >= FRACTION - 1e-9
    assert "holding >= 40% active target" in ev.format_table(summary)


def test_crop_offset_draw_equals_the_uniform_draw_when_everything_is_active():
    for seed in range(5):
        a = active_crop_offset(
            9000,
            1000,
            np.random.default_rng(seed),
            spans=[(0.0, 9000 / RATE)],
            sample_rate=RATE,
            min_fraction=0.9,
        )
        assert a == int(np.random.default_rng(seed).integers(8001))
