"""Held-out evaluation: deterministic mixtures of two different descriptions that sum
exactly; a separator returning the true target scores a huge SI-SDRi, the mixture as the
estimate scores 0; the summary splits per category."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.eval import evaluate as ev


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_synth_corpus(
        out, seed=0, sample_rate=8000, clip_seconds=0.256, train_per_class=1, test_per_class=3
    )
    config = load_config("configs/demo.py", [])
    return out, config


def test_heldout_mixtures_are_deterministic_and_sum_target_and_other_class(corpus):
    data, config = corpus
    a = ev.heldout_mixtures(data, config.data, 7)
    b = ev.heldout_mixtures(data, config.data, 7)
    c = ev.heldout_mixtures(data, config.data, 7, seed=5)
    assert [m.id for m in a] == [m.id for m in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mixture, y.mixture)
    assert any(not np.array_equal(x.mixture, y.mixture) for x, y in zip(a, c))
    low, high = config.data.snr_db
    for m in a:
        residual = m.mixture - m.target
        snr = 10 * np.log10(np.sum(m.target**2) / np.sum(residual**2))
        assert low - 1e-3 <= snr <= high + 1e-3
        rms_db = 20 * np.log10(np.sqrt(np.mean(m.target.astype(np.float64) ** 2)))
        assert abs(rms_db - config.data.target_rms_db) < 1e-3


@dataclasses.dataclass
class _Result:
    target: list


class OracleSeparator:
    """Returns the true target (or the mixture) for each mixture it was built with."""

    def __init__(self, mixtures, return_mixture=False):
        self.lookup = {
            m.mixture.tobytes(): (m.mixture if return_mixture else m.target) for m in mixtures
        }

    def separate(self, audios, descriptions, key=None, max_batch=8):
        return _Result([self.lookup[np.asarray(a).tobytes()] for a in audios])


def test_true_target_gives_huge_si_sdri_and_mixture_gives_zero(corpus):
    data, config = corpus
    mixtures = ev.heldout_mixtures(data, config.data, 10)
    oracle = ev.evaluate(OracleSeparator(mixtures), mixtures, batch=4)
    assert oracle["overall"]["count"] == 10
    assert oracle["overall"]["si_sdri_median"] > 60 and oracle["overall"]["sdr_median"] > 60
    identity = ev.evaluate(OracleSeparator(mixtures, return_mixture=True), mixtures)
    assert abs(identity["overall"]["si_sdri_mean"]) < 1e-6
    assert sum(s["count"] for s in identity["per_category"].values()) == 10
    assert set(identity["per_category"]) == {m.category for m in mixtures}
    table = ev.format_table(identity)
    assert "overall" in table and all(c in table for c in identity["per_category"])


def test_heldout_mixtures_without_test_split_names_the_directory(tmp_path, corpus):
    _, config = corpus
    with pytest.raises(ValueError, match=str(tmp_path)):
        ev.heldout_mixtures(tmp_path, config.data, 3)
