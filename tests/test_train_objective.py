"""Flow-matching objective, time sampling and conditioning dropout (SPEC.md, Training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samaudio_jax.data.spans import span_array_to_anchors
from samaudio_jax.train import objective


def test_path_starts_at_noise_ends_at_data_and_moves_with_velocity_u():
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(2, 3, 4, 6)).astype(np.float64)
    for s in (0.0, 1e-3, 0.1):
        xt0, u = objective.interpolate(x0, x1, np.zeros(3), s)
        xt1, _ = objective.interpolate(x0, x1, np.ones(3), s)
        np.testing.assert_allclose(xt0, x0, atol=1e-12)
        np.testing.assert_allclose(xt1, x1 + s * x0, atol=1e-12)
        t, h = np.array([0.2, 0.5, 0.9]), 1e-6
        a, _ = objective.interpolate(x0, x1, t + h, s)
        b, _ = objective.interpolate(x0, x1, t - h, s)
        np.testing.assert_allclose((a - b) / (2 * h), u, atol=1e-6)  # d x_t / dt == u


def test_masked_mse_counts_valid_frames_only_and_matches_numpy():
    rng = np.random.default_rng(1)
    pred, x0, x1 = rng.normal(size=(3, 2, 7, 4)).astype(np.float32)
    valid = np.array([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)
    for prediction, target in (("velocity", x1 - 0.9 * x0), ("clean", x1)):
        loss = objective.flow_matching_loss(
            pred, x0, x1, valid, sigma_min=0.1, prediction=prediction
        )
        expected = ((pred - target) ** 2)[valid].mean()
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
        garbage = pred.copy()
        garbage[0, 4:] = 1e6  # padded frames must not count
        loss2 = objective.flow_matching_loss(
            garbage, x0, x1, valid, sigma_min=0.1, prediction=prediction
        )
        np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)


def test_unknown_prediction_and_time_sampling_are_refused_by_name():
    with pytest.raises(ValueError, match="config.model.prediction"):
        objective.regression_target(0.0, 0.0, 0.0, "noise")
    with pytest.raises(ValueError, match="config.train.time_sampling"):
        objective.sample_time(jax.random.PRNGKey(0), 4, "beta")


def test_time_samplers_have_the_requested_distribution():
    key = jax.random.PRNGKey(0)
    u = np.asarray(objective.sample_time(key, 20000, "uniform"))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    t = np.asarray(objective.sample_time(key, 20000, "logit_normal", 0.5, 0.7))
    logit = np.log(t / (1 - t))
    assert abs(logit.mean() - 0.5) < 0.02 and abs(logit.std() - 0.7) < 0.02


def test_dropout_rate_is_respected():
    drop = np.asarray(objective.dropout_mask(jax.random.PRNGKey(3), 20000, 0.3))
    assert abs(drop.mean() - 0.3) < 0.015
    assert not np.asarray(objective.dropout_mask(jax.random.PRNGKey(3), 100, 0.0)).any()


def test_dropped_text_becomes_the_empty_prompt_tokens():
    ids = jnp.array([[5, 6, 7, 8], [9, 10, 0, 0]], jnp.int32)
    mask = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    empty_ids, empty_mask = jnp.array([2], jnp.int32), jnp.array([True])
    out_ids, out_mask = objective.drop_text(
        ids, mask, jnp.array([True, False]), empty_ids, empty_mask
    )
    np.testing.assert_array_equal(out_ids, [[2, 0, 0, 0], [9, 10, 0, 0]])
    np.testing.assert_array_equal(out_mask, [[1, 0, 0, 0], [1, 1, 0, 0]])


def test_dropped_spans_point_every_valid_frame_at_null_and_video_becomes_zeros():
    spans = jnp.array([[[1, 0.0, 0.5], [2, 0.5, 1.0]], [[1, 0.25, 0.75], [0, 0, 0]]], jnp.float32)
    valid = jnp.array([[True] * 8, [True] * 6 + [False] * 2])
    dropped = objective.drop_spans(spans, jnp.array([True, False]))
    _, align = span_array_to_anchors(dropped, valid, 8, 1)
    np.testing.assert_array_equal(align[0], np.zeros(8))  # <null> everywhere
    _, align_kept = span_array_to_anchors(spans, valid, 8, 1)
    np.testing.assert_array_equal(align[1], align_kept[1])
    video = jnp.ones((2, 3, 8))
    out = objective.drop_video(video, jnp.array([False, True]))
    assert float(out[0].min()) == 1.0 and float(jnp.abs(out[1]).max()) == 0.0
