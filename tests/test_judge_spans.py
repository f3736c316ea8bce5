"""PE-A-Frame spans: the release's thresholding of frame logits, and predict_spans on a
synthetic mixture whose target (a tone) sounds only in a known interval. The frame model's
weights come from a test-time fit: a ridge regression of the target's activity on the audio
head's normalised frame states (the text head made constant), written to a release-layout
directory and loaded back, so the whole path (loader, tokenizer, DAC encoder, transformer,
heads, threshold) runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from samaudio_jax.judge.config import FrameConfig
from samaudio_jax.judge.frame import spans_from_logits
from samaudio_jax.judge.load import build_frame, write_frame_dir
from samaudio_jax.judge.span_predictor import SpanPredictor
from samaudio_jax.sample.judging import predict_spans
from samaudio_jax.sample.span_prediction import fill_spans
from tests import judge_reference as R

RATE, HOP = R.DAC["sampling_rate"], R.HOP  # 800 Hz, 100 frames / s


def test_threshold_runs_become_spans():
    logit = np.log(0.3 / 0.7)  # sigmoid = 0.3: not above the threshold
    logits = np.array([3.0, 3.0, logit, -2.0, 1.0, 1.0, 1.0, -5.0, 2.0, 9.0])
    assert spans_from_logits(logits, 10, HOP, RATE) == [(0.0, 0.02), (0.04, 0.07), (0.08, 0.10)]
    assert spans_from_logits(logits, 9, HOP, RATE)[-1] == (0.08, 0.09)  # padded frames dropped
    assert spans_from_logits(np.full(5, -3.0), 5, HOP, RATE) == []


def clip(rng, start, end, seconds=3.0):
    t = np.arange(int(seconds * RATE)) / RATE
    wav = 0.03 * rng.standard_normal(t.shape)
    on = (t >= start) & (t < end)
    wav[on] += 0.5 * np.sin(2 * np.pi * 100 * t[on])
    return wav.astype(np.float32)


def iou(spans, start, end):
    inter = sum(max(0.0, min(e, end) - max(s, start)) for _, s, e in spans)
    union = sum(e - s for _, s, e in spans) + (end - start) - inter
    return inter / union


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("frame")
    cfg = FrameConfig.from_dict(R.frame_config_dict(R.NTH))
    model = build_frame(cfg, seed=0)
    rng = np.random.default_rng(0)
    intervals = [(0.3, 1.1), (1.5, 2.7), (0.0, 0.8), (2.0, 3.0), (0.9, 2.2), (0.5, 0.9)]
    waves = np.stack([clip(rng, s, e) for s, e in intervals])

    @nnx.jit
    def head_inputs(m, w):
        return m.audio_head.layer_norm(m.audio_states(m.encode(w)))

    x = np.asarray(head_inputs(model, jnp.asarray(waves)), np.float64).reshape(
        -1, cfg.audio_transformer.hidden_size
    )
    centers = (np.arange(waves.shape[1] // HOP) + 0.5) * HOP / RATE
    y = np.concatenate([np.where((centers >= s) & (centers < e), 4.0, -4.0) for s, e in intervals])
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.linalg.solve(xb.T @ xb + 1e-2 * np.eye(xb.shape[1]), xb.T @ y)
    out_dim = cfg.output_dim
    kernel = np.zeros((x.shape[1], out_dim), np.float32)
    kernel[:, 0] = w[:-1]
    model.audio_head.proj.kernel.set_value(jnp.asarray(kernel))
    # the text head gives e_0 whatever the text: zero scale, unit bias, averaging projection
    th = cfg.text_model.hidden_size
    model.text_head.layer_norm.scale.set_value(jnp.zeros(th))
    model.text_head.layer_norm.bias.set_value(jnp.ones(th))
    text_kernel = np.zeros((th, out_dim), np.float32)
    text_kernel[:, 0] = 1.0 / th
    model.text_head.proj.kernel.set_value(jnp.asarray(text_kernel))
    model.logit_scale.set_value(jnp.ones(1))
    model.logit_bias.set_value(jnp.asarray([w[-1]], jnp.float32))
    write_frame_dir(model, d)
    R.write_tokenizer(d)
    return d


def test_predicted_span_covers_the_target_interval(fitted_dir):
    predictor = SpanPredictor.load(fitted_dir)
    rng = np.random.default_rng(9)
    start, end = 1.2, 2.1
    mix = clip(rng, start, end)
    # given at twice the rate: resampled to the model's before encoding
    up = np.repeat(mix, 2)
    (spans,) = predict_spans(predictor, [(up, 2 * RATE)], ["a tone"])  # separate()'s inputs
    assert spans and all(sign == "+" for sign, _, _ in spans)
    assert iou(spans, start, end) >= 0.8, spans
    filled = fill_spans(
        predictor, [mix, mix], RATE, ["a tone", "a tone"], [None, [("+", 0.1, 0.2)]]
    )
    assert filled[1] == [("+", 0.1, 0.2)]  # given spans are kept
    assert iou(filled[0], start, end) >= 0.8, filled[0]


def test_separate_with_predict_spans_equals_separate_with_those_spans(fitted_dir):
    """separate(predict_spans=...) end to end: the input without spans is separated with
    exactly the spans the predictor finds (same output as passing them by hand), and the
    span reaches the model's anchor alignment; the input given spans keeps its own."""
    from configs.tiny import get_config
    from samaudio_jax.sample import loading
    from samaudio_jax.sample.separate import separate

    predictor = SpanPredictor.load(fitted_dir)
    sep = loading.build_separator(get_config())
    rate = sep.codec.sample_rate
    mix = clip(np.random.default_rng(9), 1.2, 2.1)  # at the frame model's 800 Hz
    wave = np.interp(np.arange(3 * rate) / rate, np.arange(mix.shape[0]) / RATE, mix)
    waves = [wave.astype(np.float32)] * 2
    given = [("+", 0.1, 0.2)]
    found = fill_spans(predictor, waves, rate, ["a tone"] * 2, [None, given])
    assert found[1] == given and iou(found[0], 1.2, 2.1) >= 0.8, found

    def run(**kw):
        return separate(
            sep.model, sep.codec, sep.text_encoder, waves, ["a tone"] * 2,
            key=jax.random.key(0), solver="euler", steps=2, cache_dir=None, **kw,
        )  # fmt: skip

    auto = run(spans=[None, given], predict_spans=predictor)
    manual = run(spans=found)
    for a, b in zip(auto.target + auto.residual, manual.target + manual.residual):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(auto.anchor_alignments, manual.anchor_alignments):
        np.testing.assert_array_equal(a, b)
    assert np.any(auto.anchor_alignments[0] != 0)
