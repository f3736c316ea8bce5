"""Flow matching as SAM Audio trains it: noise at t = 0, data at t = 1.

x_t = (1 - (1 - s) t) x0 + t x1 and u = x1 - (1 - s) x0 with s = config.train.sigma_min.
With config.model.prediction == "velocity" (the release) the network output is compared
with u; with "clean" it is an estimate of x1 and is compared with x1. The loss is a mean
squared error over valid (unpadded) frames and all channels.

Also here: time sampling (uniform, logit-normal) and per-modality conditioning dropout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PREDICTIONS = ("velocity", "clean")
TIME_SAMPLINGS = ("uniform", "logit_normal")


def sample_time(
    rng: jax.Array, batch: int, kind: str, mean: float = 0.0, std: float = 1.0
) -> jax.Array:
    """(batch,) times in (0, 1): uniform, or sigmoid of N(mean, std) (logit-normal)."""
    if kind == "uniform":
        return jax.random.uniform(rng, (batch,), jnp.float32)
    if kind == "logit_normal":
        return jax.nn.sigmoid(mean + std * jax.random.normal(rng, (batch,), jnp.float32))
    raise ValueError(f"config.train.time_sampling: expected one of {TIME_SAMPLINGS}, got {kind!r}")


def interpolate(x0: jax.Array, x1: jax.Array, t: jax.Array, sigma_min: float):
    """(x_t, u): the point on the conditional path at time t (B,) and its velocity."""
    tt = t.reshape((-1,) + (1,) * (x0.ndim - 1)).astype(x0.dtype)
    x_t = (1.0 - (1.0 - sigma_min) * tt) * x0 + tt * x1
    u = x1 - (1.0 - sigma_min) * x0
    return x_t, u


def regression_target(x0: jax.Array, x1: jax.Array, sigma_min: float, prediction: str):
    """What the network output is compared with: u (velocity) or x1 (clean)."""
    if prediction == "velocity":
        return x1 - (1.0 - sigma_min) * x0
    if prediction == "clean":
        return x1
    raise ValueError(f"config.model.prediction: expected one of {PREDICTIONS}, got {prediction!r}")


def masked_squared_error(pred: jax.Array, target: jax.Array, valid: jax.Array):
    """(sum of squared errors over valid frames, number of valid frame-channels).

    pred, target: (B, T, C); valid: (B, T) bool. Their ratio is the masked MSE; keeping the
    two apart lets gradient accumulation over micro-batches reproduce the full-batch mean.
    """
    err = jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32))
    w = valid.astype(jnp.float32)[..., None]
    return jnp.sum(err * w), jnp.sum(w) * pred.shape[-1]


def flow_matching_loss(pred, x0, x1, valid, *, sigma_min: float, prediction: str):
    """Masked MSE of the network output against its target."""
    target = regression_target(x0, x1, sigma_min, prediction)
    total, count = masked_squared_error(pred, target, valid)
    return total / jnp.maximum(count, 1.0)


def dropout_mask(rng: jax.Array, batch: int, rate) -> jax.Array:
    """(batch,) bool, True where that entry is dropped: probability `rate`, one for all or
    one per entry (the same uniform draws either way, so equal rates give equal masks)."""
    rates = np.broadcast_to(np.asarray(rate, np.float32), (batch,))  # static: from the config
    if not (rates > 0.0).any():
        return jnp.zeros((batch,), bool)
    return jax.random.bernoulli(rng, jnp.asarray(rates), (batch,))


def drop_text(ids, mask, drop, empty_ids, empty_mask):
    """Replaces the token rows of dropped examples with the empty prompt "" (padded to S)."""
    s = ids.shape[1]
    e_ids = jnp.zeros((s,), ids.dtype).at[: empty_ids.shape[0]].set(empty_ids)
    e_mask = jnp.zeros((s,), mask.dtype).at[: empty_mask.shape[0]].set(empty_mask)
    d = drop[:, None]
    return jnp.where(d, e_ids[None], ids), jnp.where(d, e_mask[None], mask)


def drop_video(video, drop):
    """Zeros (the release's "no video") for dropped examples; video is (B, Dv, T)."""
    return jnp.where(drop[:, None, None], jnp.zeros_like(video), video)


def drop_spans(spans, drop):
    """Marks every span slot of dropped examples unused, so every frame points at <null>."""
    code = jnp.where(drop[:, None], 0.0, spans[..., 0])
    return spans.at[..., 0].set(code)


def drop_text_features(features, mask, drop, empty_features, empty_mask):
    """Replaces the precomputed text features (B, S, D) of dropped examples with those of
    the empty prompt "" (L, D), zero-padded to S: what T5 gives for "" (its padded
    positions are zero) when the step runs it on dropped token rows."""
    s = features.shape[1]
    e_feats = jnp.zeros((s, features.shape[2]), features.dtype)
    e_feats = e_feats.at[: empty_features.shape[0]].set(empty_features.astype(features.dtype))
    e_mask = jnp.zeros((s,), mask.dtype).at[: empty_mask.shape[0]].set(empty_mask)
    d = drop[:, None]
    return jnp.where(d[..., None], e_feats[None], features), jnp.where(d, e_mask[None], mask)
