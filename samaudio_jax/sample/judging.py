"""The Judge and the span predictor on the same audio inputs `separate` takes: paths (local
or URL), arrays at the model's rate ((samples,) or (channels, samples)), or (array, rate)
pairs, read by audio_io and resampled to each model's own rate.

    scores = judge_audio(JudgeScorer.load(dir), ["mix.wav"], ["target.wav"], ["a dog"])
    spans = predict_spans(SpanPredictor.load(dir), ["mix.wav"], ["a dog"])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samaudio_jax.sample import audio_io


def judge_audio(
    scorer,
    mixtures: Sequence[audio_io.AudioInput],
    separated: Sequence[audio_io.AudioInput],
    descriptions: Sequence[str],
) -> dict[str, np.ndarray]:
    """{score name: (B,)} from a judge.scorer.JudgeScorer."""
    rate = scorer.sample_rate
    mixes = [audio_io.load_audio(a, rate, f"mixtures[{i}]") for i, a in enumerate(mixtures)]
    seps = [audio_io.load_audio(a, rate, f"separated[{i}]") for i, a in enumerate(separated)]
    return scorer.score(mixes, seps, list(descriptions), rate)


def predict_spans(
    predictor, audios: Sequence[audio_io.AudioInput], descriptions: Sequence[str]
) -> list[list[tuple[str, float, float]]]:
    """ "+" spans per input from a judge.span_predictor.SpanPredictor."""
    rate = predictor.model.cfg.codec.sample_rate
    waves = [audio_io.load_audio(a, rate, f"audios[{i}]") for i, a in enumerate(audios)]
    return predictor.predict(waves, list(descriptions), rate)
