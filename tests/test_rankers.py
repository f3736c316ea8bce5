"""Rankers: the model-free sound-activity ranker scores span agreement; ensembles add up."""

import numpy as np
import pytest

from samaudio_jax.sample import rankers

RATE = 1000  # 40-sample frames at frame_seconds=0.04


def tone(length, active):
    """A 1 kHz-rate tone that is on inside the sample ranges in `active`, silent elsewhere."""
    t = np.arange(length)
    out = np.zeros(length, np.float32)
    for lo, hi in active:
        out[lo:hi] = np.sin(0.3 * t[lo:hi])
    return out


def score(candidates, spans, lengths=None, ranker=None):
    ranker = ranker or rankers.SoundActivityRanker()
    target = np.asarray(candidates, np.float32)[None]
    lengths = lengths or [target.shape[-1]]
    return ranker.score(
        target,
        residual=np.zeros_like(target),
        mixture=target[:, 0],
        lengths=lengths,
        sample_rate=RATE,
        descriptions=["x"],
        spans=[spans],
    )[0]


def test_candidate_active_exactly_on_the_span_scores_one_and_wins():
    spans = [("+", 0.4, 1.2)]  # frames 10..30 of 40-sample frames
    exact = tone(2000, [(400, 1200)])
    everywhere = tone(2000, [(0, 2000)])
    elsewhere = tone(2000, [(1400, 2000)])
    scores = score([everywhere, exact, elsewhere], spans)
    # IoU: exact 20/20; everywhere 20 of 50 frames; elsewhere no overlap.
    np.testing.assert_allclose(scores, [20 / 50, 1.0, 0.0], atol=1e-6)
    assert rankers.pick_best(scores[None]).tolist() == [1]


def test_quiet_frames_below_the_silence_threshold_count_as_inactive():
    wav = tone(2000, [(0, 2000)])
    wav[:400] *= 10 ** (-50 / 20)  # 50 dB down: below the -40 dB threshold
    active = rankers.frame_activity(wav, 2000, 40, silence_db=-40.0)
    assert not active[:10].any() and active[10:].all()


def test_recall_and_precision_metrics():
    spans = [("+", 0.0, 0.8)]  # frames 0..20
    half = tone(2000, [(0, 400)])  # frames 0..10
    recall = score([half], spans, ranker=rankers.SoundActivityRanker(metric="recall"))
    precision = score([half], spans, ranker=rankers.SoundActivityRanker(metric="precision"))
    np.testing.assert_allclose(recall, [0.5], atol=1e-6)
    np.testing.assert_allclose(precision, [1.0], atol=1e-6)


def test_negative_spans_and_no_spans_give_no_preference():
    wavs = [tone(800, [(0, 400)]), tone(800, [(400, 800)])]
    assert score(wavs, []).tolist() == [0.0, 0.0]
    assert score(wavs, [("-", 0.0, 0.4)]).tolist() == [0.0, 0.0]


def test_samples_past_the_length_are_ignored():
    wav = tone(2000, [(0, 400), (1200, 2000)])
    scores = score([wav], [("+", 0.0, 0.4)], lengths=[800])
    np.testing.assert_allclose(scores, [1.0], atol=1e-6)


def test_ensemble_is_the_weighted_sum():
    class Constant(rankers.Ranker):
        def __init__(self, values):
            self.values = np.asarray(values, np.float32)

        def score(self, target, **kwargs):
            return self.values

    ens = rankers.EnsembleRanker([(Constant([[1.0, 2.0]]), 0.5), (Constant([[3.0, -1.0]]), 2.0)])
    np.testing.assert_allclose(ens.score(np.zeros((1, 2, 4))), [[6.5, -1.0]])


def test_bad_metric_is_refused():
    with pytest.raises(ValueError, match="metric: expected one of iou, recall, precision"):
        rankers.SoundActivityRanker(metric="f1")
