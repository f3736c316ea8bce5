"""Mixing invariants and span prompts, on random inputs and on pipeline batches."""

import numpy as np
import pytest

from samaudio_jax.data.mixing import activity_spans, mix_sources, span_prompt
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset
from samaudio_jax.data.shard_writer import ShardWriter
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import write_synth_corpus

RATE = 8000


def _snr_db(target, residual):
    return 10 * np.log10(
        np.sum(target.astype(np.float64) ** 2) / np.sum(residual.astype(np.float64) ** 2)
    )


@pytest.mark.parametrize("seed", range(6))
def test_mix_sources_sum_snr_and_peak_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(500, 3000))
    target = rng.normal(size=n) * rng.uniform(0.01, 3)
    other = rng.laplace(size=int(rng.integers(n // 2, 2 * n))) * rng.uniform(0.01, 3)
    snr = rng.uniform(-20, 20)
    mixture, t, r = mix_sources(target, [other], [snr], target_rms_db=rng.uniform(-30, 0))
    assert mixture.dtype == t.dtype == r.dtype == np.float32 and mixture.shape == (n,)
    np.testing.assert_allclose(mixture, t + r, rtol=0, atol=1e-6)
    np.testing.assert_allclose(r, mixture - t, rtol=0, atol=0)
    assert max(np.abs(mixture).max(), np.abs(t).max(), np.abs(r).max()) <= 1.0
    assert _snr_db(t, r) == pytest.approx(snr, abs=1e-3)
    # The target is the input up to one positive gain.
    gain = np.dot(t, target) / np.dot(target, target)
    assert gain > 0
    np.testing.assert_allclose(t, gain * target, rtol=0, atol=1e-5 * np.abs(t).max())


def test_mix_sources_scales_down_loud_mixtures_without_changing_snr():
    rng = np.random.default_rng(1)
    target = rng.normal(size=2000)
    others = [rng.normal(size=2000), rng.normal(size=2000)]
    mixture, t, r = mix_sources(target, others, [-15.0, -15.0], target_rms_db=-3.0)
    assert np.abs(mixture).max() <= 0.99 + 1e-6
    # Two independent sources each at -15 dB: -15 - 10 log10(2) dB overall, to sampling noise.
    assert _snr_db(t, r) == pytest.approx(-15 - 10 * np.log10(2), abs=0.3)


def test_silent_target_leaves_others_unscaled_and_sum_exact():
    other = np.full(100, 0.2)
    mixture, t, r = mix_sources(np.zeros(100), [other], [0.0])
    assert np.all(t == 0)
    np.testing.assert_allclose(r, other, atol=1e-7)


def test_activity_spans_find_the_active_interval():
    rng = np.random.default_rng(0)
    audio = np.zeros(RATE)
    audio[1600:4000] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(2400) / RATE)
    audio += 1e-5 * rng.normal(size=RATE)
    (span,) = activity_spans(audio, RATE)
    assert span[0] == pytest.approx(0.2, abs=0.021) and span[1] == pytest.approx(0.5, abs=0.021)


def test_span_prompt_negative_span_lies_in_a_gap_and_respects_k():
    rng = np.random.default_rng(0)
    positive = [(0.1, 0.2), (0.4, 0.45), (0.6, 0.9), (0.92, 0.95)]
    arr = span_prompt(positive, 1.0, max_spans=3, negative_prob=1.0, rng=rng)
    codes = arr[:, 0].tolist()
    assert codes.count(1.0) == 2 and codes.count(2.0) == 1
    plus = arr[arr[:, 0] == 1][:, 1:]
    np.testing.assert_allclose(plus, [[0.1, 0.2], [0.6, 0.9]], atol=1e-7)  # longest two, in order
    lo, hi = arr[arr[:, 0] == 2][0, 1:]
    assert all(hi <= s or lo >= e for s, e in positive)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synth_corpus(root, seed=3, train_per_class=6, test_per_class=1, sample_rate=RATE)
    return ShardReader(root / "train")


def test_pipeline_batches_satisfy_mixing_invariants(corpus):
    lo, hi = -5.0, 7.0
    cfg = PipelineConfig(
        sample_rate=RATE, segment_seconds=1.0, min_sources=1, max_sources=1, snr_db=(lo, hi)
    )
    it = iter(make_dataset(corpus, cfg, batch_size=5, seed=1))
    for _ in range(4):
        b = next(it)
        np.testing.assert_allclose(b["mixture"], b["target"] + b["residual"], rtol=0, atol=1e-6)
        assert np.abs(b["mixture"]).max() <= 1.0 and np.abs(b["target"]).max() <= 1.0
        assert np.all(b["num_sources"] == 1)
        for i in range(5):
            measured = _snr_db(b["target"][i], b["residual"][i])
            assert lo - 1e-3 <= measured <= hi + 1e-3
            assert measured == pytest.approx(b["snr_db"][i, 0], abs=1e-3)


def test_pipeline_spans_match_record_spans_and_negatives_are_silent(corpus):
    cfg = PipelineConfig(sample_rate=RATE, segment_seconds=1.0, negative_span_prob=1.0)
    b = next(iter(make_dataset(corpus, cfg, batch_size=6, seed=0)))
    for i in range(6):
        record = corpus[int(b["index"][i])]
        plus = b["spans"][i][b["spans"][i, :, 0] == 1][:, 1:]
        # Segment = clip length, so the crop starts at 0 and spans are the record's.
        np.testing.assert_allclose(plus, record["spans"], atol=1e-6)
        for _, start, end in b["spans"][i][b["spans"][i, :, 0] == 2]:
            seg = b["target"][i, int(np.ceil(start * RATE)) : int(end * RATE)]
            assert np.abs(seg).max() < 1e-4  # target silent under "-"


def test_short_clips_are_padded_with_valid_mask(tmp_path):
    with ShardWriter(tmp_path, RATE) as w:
        w.add({"id": "short", "description": "a short thing"}, np.full(3000, 0.5))
        w.add({"id": "other", "description": "a long thing"}, np.full(9000, 0.3))
    cfg = PipelineConfig(sample_rate=RATE, segment_seconds=0.5, min_sources=1, max_sources=1)
    b = next(iter(make_dataset(ShardReader(tmp_path), cfg, batch_size=2, shuffle=False)))
    i = int(np.flatnonzero(b["index"] == 0)[0])
    assert b["valid"][i].sum() == 3000 and b["valid"][i, :3000].all()
    assert np.all(b["mixture"][i, 3000:] == 0) and np.all(b["target"][i, 3000:] == 0)
    assert b["valid"][1 - i].all()


def test_group_members_mix_time_aligned(tmp_path):
    rng = np.random.default_rng(0)
    stems = [rng.uniform(-0.5, 0.5, 3 * RATE) for _ in range(2)]
    with ShardWriter(tmp_path, RATE) as w:
        w.add({"id": "vox", "description": "singing", "group": "song"}, stems[0])
        w.add({"id": "bass", "description": "bass guitar", "group": "song"}, stems[1])
        w.add({"id": "x", "description": "a dog barking"}, rng.uniform(-0.5, 0.5, 3 * RATE))
    reader = ShardReader(tmp_path)
    cfg = PipelineConfig(sample_rate=RATE, segment_seconds=0.5, min_sources=1, max_sources=1)
    b = next(iter(make_dataset(reader, cfg, batch_size=3, shuffle=False)))
    n = cfg.segment_samples
    for i in range(2):
        target_stem, other_stem = reader[i]["audio"], reader[1 - i]["audio"]
        t = b["target"][i]
        offset = int(np.argmax(np.correlate(target_stem, t, "valid")))
        assert np.corrcoef(t, target_stem[offset : offset + n])[0, 1] > 0.9999
        assert np.corrcoef(b["residual"][i], other_stem[offset : offset + n])[0, 1] > 0.9999
