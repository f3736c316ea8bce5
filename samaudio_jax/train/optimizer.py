"""The optax optimizer from config.train: AdamW, warm-up then constant or cosine, clipping.

Weight decay applies to matrices and convolution kernels (ndim >= 2), not to norms, biases,
gates or tables of one dimension. Gradient accumulation is not an optax wrapper here: the
train step scans over micro-batches (train/step.py) so that one optimizer update sees the
whole global batch.
"""

from __future__ import annotations

import jax
import optax

SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(train_cfg) -> optax.Schedule:
    """Linear warm-up from 0 to learning_rate over warmup_steps, then constant or cosine."""
    peak = float(train_cfg.learning_rate)
    warmup = int(train_cfg.warmup_steps)
    if train_cfg.schedule not in SCHEDULES:
        raise ValueError(
            f"config.train.schedule: expected one of {SCHEDULES}, got {train_cfg.schedule!r}"
        )
    if warmup < 0:
        raise ValueError(f"config.train.warmup_steps: expected >= 0, got {warmup}")
    warm = optax.linear_schedule(0.0, peak, max(warmup, 1))
    if train_cfg.schedule == "constant":
        after = optax.constant_schedule(peak)
    else:
        decay_steps = max(int(train_cfg.steps) - warmup, 1)
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=0.0)
    if warmup == 0:
        return after
    return optax.join_schedules([warm, after], [warmup])


def decay_mask(params):
    """True for parameters that get weight decay (ndim >= 2)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    chain = []
    if train_cfg.grad_clip_norm and train_cfg.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(float(train_cfg.grad_clip_norm)))
    chain.append(
        optax.adamw(
            learning_rate_schedule(train_cfg),
            b1=float(train_cfg.b1),
            b2=float(train_cfg.b2),
            weight_decay=float(train_cfg.weight_decay),
            mask=decay_mask,
        )
    )
    return optax.chain(*chain)


def ema_update(ema, params, decay: float):
    """ema <- decay * ema + (1 - decay) * params, in the EMA's own dtype."""
    return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params)
