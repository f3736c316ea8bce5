"""Learning-rate schedule, weight-decay mask and EMA of the optimizer (config.train)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from samaudio_jax.config_schema import default_config
from samaudio_jax.train import optimizer


def _train(**kw):
    t = default_config().train
    for k, v in kw.items():
        t[k] = v
    return t


def test_warmup_is_linear_then_constant():
    s = optimizer.learning_rate_schedule(_train(learning_rate=1e-3, warmup_steps=10))
    np.testing.assert_allclose(
        [float(s(i)) for i in (0, 5, 10, 50, 5000)], [0, 5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-6
    )


def test_cosine_decays_to_zero_at_the_last_step():
    s = optimizer.learning_rate_schedule(
        _train(learning_rate=1e-3, warmup_steps=10, schedule="cosine", steps=110)
    )
    np.testing.assert_allclose(float(s(60)), 0.5e-3, rtol=1e-5)
    assert float(s(110)) < 1e-9


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="config.train.schedule"):
        optimizer.learning_rate_schedule(_train(schedule="linear"))


def test_weight_decay_applies_to_matrices_only_and_clipping_bounds_the_update():
    tx = optimizer.make_optimizer(
        _train(learning_rate=0.1, warmup_steps=0, weight_decay=0.5, grad_clip_norm=1.0)
    )
    params = {"w": jnp.ones((2, 2)), "norm": jnp.ones((2,))}
    zero = {"w": jnp.zeros((2, 2)), "norm": jnp.zeros((2,))}
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["norm"], 0.0)
    big = {"w": 1e6 * jnp.ones((2, 2)), "norm": jnp.zeros((2,))}
    clip = optax.clip_by_global_norm(1.0)
    clipped, _ = clip.update(big, clip.init(params))
    np.testing.assert_allclose(float(optax.tree.norm(clipped)), 1.0, rtol=1e-5)


def test_ema_moves_toward_params_by_one_minus_decay():
    out = optimizer.ema_update({"a": jnp.zeros(3)}, {"a": jnp.ones(3)}, 0.999)
    np.testing.assert_allclose(out["a"], 1e-3, rtol=1e-5)
