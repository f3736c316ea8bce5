"""The train step: one jax.jit over (state, frozen, batch, rng) with explicit shardings.

A batch is a dict of global arrays with the batch dimension first:
- audio, either waveforms `mixture`, `target`, `residual` (B, N) float, encoded here by the
  frozen codec inside the same program, or latents `mixture_latent`, `target_latent`,
  `residual_latent` (B, T, latent_dim);
- `valid`, bool, either (B, T) at the latent frame rate or (B, N) per sample (waveforms;
  a frame is valid when any of its samples is), or `num_samples` (B,) int (waveforms);
  neither means every frame is valid;
- optional `spans` (B, K, 3) float (code, start_s, end_s), `text_ids` / `text_mask` (B, S),
  or precomputed `text_features` (B, S, text_dim) / `text_mask` (a latent dataset's text
  table: no text encoder runs; dropped examples get setup.empty_text, the features of ""),
  `video` (B, Dv, T) (zeros = no video, the release's convention; the pipeline's
  `has_video` is not needed here).

Randomness is drawn per example from keys split off fold_in(rng, step), so the losses do
not depend on the mesh, and gradient accumulation (a scan over micro-batches, examples
taken strided so every device keeps its own rows) gives the full-batch gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from samaudio_jax.data.spans import span_array_to_anchors
from samaudio_jax.parallel import rules as rules_lib
from samaudio_jax.parallel.constraints import activation_sharding
from samaudio_jax.train import distill, freeze, objective
from samaudio_jax.train.optimizer import ema_update, learning_rate_schedule
from samaudio_jax.train.state import TrainSetup

WAVE_KEYS = ("mixture", "target", "residual")
LATENT_KEYS = ("mixture_latent", "target_latent", "residual_latent")
USED_KEYS = (
    WAVE_KEYS
    + LATENT_KEYS
    + ("valid", "num_samples", "spans", "text_ids", "text_mask", "video", "text_features")
)
TEXT_BUCKET = 16  # text is padded to a multiple of this many tokens (few distinct shapes)


def check_batch_keys(batch: dict) -> str:
    """'waveform' or 'latent'; ValueError naming what is missing otherwise."""
    if all(k in batch for k in WAVE_KEYS):
        return "waveform"
    if all(k in batch for k in LATENT_KEYS):
        return "latent"
    raise ValueError(
        f"batch: expected waveforms {WAVE_KEYS} or latents {LATENT_KEYS}, got keys {sorted(batch)}"
    )


def batch_shardings(setup: TrainSetup, batch: dict) -> dict:
    rules = setup.config.mesh.rules
    return {k: rules_lib.batch_sharding(setup.mesh, rules, len(v.shape)) for k, v in batch.items()}


def prompt_dropout_rates(train_cfg) -> tuple[float, float, float]:
    """(text, video, spans) drop probabilities: each prompt's own rate, else cond_dropout
    (a config saved before the per-prompt rates has only that)."""
    p = float(train_cfg.cond_dropout)
    return tuple(float(train_cfg.get(f"{k}_dropout", p)) for k in ("text", "video", "span"))


def _example_randomness(key, frames: int, channels: int, train_cfg):
    """Per example: time, noise x0 (T, C), drop flags for text / video / spans."""
    k_t, k_noise, k_drop = jax.random.split(key, 3)
    t = objective.sample_time(
        k_t, 1, train_cfg.time_sampling, train_cfg.logit_normal_mean, train_cfg.logit_normal_std
    )[0]
    noise = jax.random.normal(k_noise, (frames, channels), jnp.float32)
    drops = objective.dropout_mask(k_drop, 3, prompt_dropout_rates(train_cfg))
    return t, noise, drops


def conditioning_drops(example_keys, train_cfg) -> jax.Array:
    """(B, 3) bool: per example, whether text / video / spans are dropped this step (the
    flags the loss uses for the same example keys)."""

    # The loss's own draw (time and noise are dead code here and compiled away).
    return jax.vmap(lambda key: _example_randomness(key, 1, 1, train_cfg)[2])(example_keys)


def network_video(video, example_keys, train_cfg) -> jax.Array:
    """The (B, Dv, T) video features the flow network gets: batch["video"] with the dropped
    examples' rows zeroed (visual-prompt dropout, train.cond_dropout; zeros = no video)."""
    drops = conditioning_drops(example_keys, train_cfg)
    return objective.drop_video(video.astype(jnp.float32), drops[:, 1])


def _encode_audio(setup: TrainSetup, frozen, mb):
    """(mixture, target, residual) latents: stored ones, or the frozen codec's encoding."""
    if check_batch_keys(mb) == "latent":
        return tuple(mb[k].astype(jnp.float32) for k in LATENT_KEYS)
    codec = nnx.merge(setup.codec_graph, frozen["codec"])
    b = mb["mixture"].shape[0]
    wav = jnp.concatenate([mb[k].astype(jnp.float32) for k in WAVE_KEYS], axis=0)
    lat = jax.lax.stop_gradient(codec.encode(wav))
    return lat[:b], lat[b : 2 * b], lat[2 * b :]


def _valid_frames(mb, batch: int, frames: int, hop: int):
    """(B, frames) True on latent frames holding real audio."""
    if "valid" in mb and mb["valid"].shape[1] != frames:  # per-sample mask
        v = mb["valid"].astype(bool)
        v = jnp.pad(v, ((0, 0), (0, frames * hop - v.shape[1])))
        return v.reshape(batch, frames, hop).any(axis=-1)
    if "valid" in mb:
        return mb["valid"].astype(bool)
    if "num_samples" in mb:
        count = (mb["num_samples"] + hop - 1) // hop
        return jnp.arange(frames)[None, :] < count[:, None]
    return jnp.ones((batch, frames), bool)


def _text_condition(setup: TrainSetup, params, frozen, mb, drop, teacher: bool = False):
    """(text features, mask, teacher's features) with the dropped examples' prompts emptied:
    a text table's features, or the text encoder run on the batch's ids (trained or frozen);
    (None, None, None) without text. The teacher's features (distillation) differ only when
    the text encoder trains: the teacher keeps its own."""
    text_features = text_mask = None
    if "text_features" in mb:  # from a text table: T5 ran once, ahead of training
        if setup.empty_text is None:
            raise ValueError(
                "batch text_features: the setup has no empty-prompt features (empty_text)"
            )
        e_feats, e_mask = setup.empty_text
        text_features, text_mask = objective.drop_text_features(
            mb["text_features"].astype(jnp.float32),
            mb["text_mask"].astype(bool),
            drop,
            jnp.asarray(e_feats, jnp.float32),
            jnp.asarray(e_mask, bool),
        )
    elif "text_ids" in mb and setup.text_graph is not None:
        ids, mask = mb["text_ids"], mb["text_mask"].astype(bool)
        e_ids, e_mask = setup.empty_prompt
        if e_ids.shape[0] > ids.shape[1]:
            raise ValueError(
                f"batch text_ids: {ids.shape[1]} tokens are fewer than the empty prompt's "
                f"{e_ids.shape[0]}; pad text to at least that length"
            )
        ids, mask = objective.drop_text(
            ids, mask, drop, jnp.asarray(e_ids), jnp.asarray(e_mask, bool)
        )
        if setup.text_trainable:
            text = nnx.merge(setup.text_graph, params["text"], frozen["text"])
            text_features = text(ids, mask)
        else:
            text = nnx.merge(setup.text_graph, frozen["text"])
            text_features = jax.lax.stop_gradient(text(ids, mask))
        text_mask = mask
        if teacher and setup.text_trainable:
            text = nnx.merge(setup.text_graph, frozen["teacher"]["text"], frozen["text"])
            return text_features, text_mask, text(ids, mask)
    return text_features, text_mask, text_features


def make_loss_fn(setup: TrainSetup, randomness=None, deterministic: bool | None = None):
    """sum_sq_err, count = loss_fn(params, frozen, micro_batch, example_keys, dropout_key).

    randomness: (example_key, frames, channels) -> (t, noise x0, (3,) drop flags) replaces
    the training draw (held-out evaluation fixes times and keeps every condition);
    deterministic: True switches dropout off (default: off only when model.dropout is 0)."""
    config = setup.config
    train_cfg, model_cfg = config.train, config.model
    info = setup.codec_info
    sigma_min = float(train_cfg.sigma_min)
    prediction = model_cfg.prediction
    objective.regression_target(0.0, 0.0, sigma_min, prediction)  # validates the name
    no_dropout = model_cfg.dropout <= 0 if deterministic is None else bool(deterministic)
    # Few-step distillation (train/distill.py) replaces the training draw's times and the
    # target; a given `randomness` (held-out evaluation) keeps the flow-matching loss.
    distilling = distill.enabled(config) and randomness is None
    student_steps = int(train_cfg.distill.student_steps) if distilling else 0

    def loss_fn(params, frozen, mb, example_keys, dropout_key):
        mix, tgt, res = _encode_audio(setup, frozen, mb)
        batch, frames, _ = mix.shape
        x1 = jnp.concatenate([tgt, res], axis=-1)
        cond = jnp.concatenate([mix, mix], axis=-1)
        valid = _valid_frames(mb, batch, frames, info["hop_length"])
        draw = randomness or (lambda k, f, c: _example_randomness(k, f, c, train_cfg))
        t, x0, drops = jax.vmap(lambda k: draw(k, frames, x1.shape[-1]))(example_keys)
        if distilling:
            t, t_end = jax.vmap(
                lambda k: distill.interval_times(jax.random.fold_in(k, 1), student_steps)
            )(example_keys)
        x_t, _ = objective.interpolate(x0, x1, t, sigma_min)

        text_features, text_mask, teacher_text = _text_condition(
            setup, params, frozen, mb, drops[:, 0], teacher=distilling
        )

        video = _video_condition(mb, drops, model_cfg.video_dim, frames)

        anchor_ids = anchor_alignment = None
        if "spans" in mb:
            spans = objective.drop_spans(mb["spans"].astype(jnp.float32), drops[:, 2])
            anchor_ids, anchor_alignment = span_array_to_anchors(
                spans, valid, info["sample_rate"], info["hop_length"]
            )

        conditions = dict(
            text_mask=text_mask,
            masked_video_features=video,
            anchor_ids=anchor_ids,
            anchor_alignment=anchor_alignment,
            audio_pad_mask=valid,
        )
        flow = nnx.merge(setup.flow_graph, params["flow"], frozen["flow"])
        pred = flow(
            x_t,
            cond,
            text_features=text_features,
            time=t,
            deterministic=no_dropout,
            rngs=None if no_dropout else nnx.Rngs(dropout=dropout_key),
            **conditions,
        )
        if distilling:  # the teacher sees the same prompts (its own text encoder's features)
            conditions["text_features"] = teacher_text
            target = distill.distilled_target(setup, frozen, x_t, cond, t, t_end, conditions)
        else:
            target = objective.regression_target(x0, x1, sigma_min, prediction)
        return objective.masked_squared_error(pred, target, valid)

    return loss_fn


def _video_condition(mb, drops, video_dim: int, frames: int):
    """The batch's (B, video_dim, frames) video features with dropped prompts zeroed, or None."""
    if "video" not in mb:
        return None
    if mb["video"].shape[1:] != (video_dim, frames):
        raise ValueError(
            f"batch video: expected (B, model.video_dim={video_dim}, "
            f"{frames} latent frames), got {mb['video'].shape}"
        )
    return objective.drop_video(mb["video"].astype(jnp.float32), drops[:, 1])


def _micro_batches(tree, k: int):
    """(B, ...) -> (k, B / k, ...), micro-batch j holding examples j, j + k, j + 2k, ..."""

    def one(x):
        b = x.shape[0]
        return jnp.swapaxes(x.reshape((b // k, k) + x.shape[1:]), 0, 1)

    return jax.tree.map(one, tree)


def _accumulated_grads(setup, grad_fn, accum, params, frozen, batch, example_keys, dropout_key):
    """(summed grads, sse, count) over `accum` micro-batches (lax.scan), each sharded over
    the batch axes as a whole batch would be; micro-batch j's dropout key folds in j."""
    rules = setup.config.mesh.rules
    mbs = _micro_batches(batch, accum)
    keys = _micro_batches(example_keys, accum)
    mb_sh = jax.tree.map(
        lambda x: NamedSharding(
            setup.mesh,
            PartitionSpec(None, *rules_lib.batch_sharding(setup.mesh, rules, x.ndim - 1).spec),
        ),
        mbs,
    )
    mbs = jax.lax.with_sharding_constraint(mbs, mb_sh)

    def body(carry, xs):
        g_acc, sse_acc, count_acc = carry
        mb, k, j = xs
        (sse, count), g = grad_fn(params, frozen, mb, k, jax.random.fold_in(dropout_key, j))
        g_acc = jax.tree.map(jnp.add, g_acc, g)
        return (g_acc, sse_acc + sse, count_acc + count), None

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    (grads, sse, count), _ = jax.lax.scan(body, (zeros, 0.0, 0.0), (mbs, keys, jnp.arange(accum)))
    return grads, sse, count


def make_train_step(setup: TrainSetup):
    """The pure step function: (state, frozen, batch, rng) -> (new state, metrics)."""
    config = setup.config
    train_cfg = config.train
    accum = int(train_cfg.grad_accum_steps)
    if accum < 1:
        raise ValueError(f"config.train.grad_accum_steps: expected >= 1, got {accum}")
    loss_fn = make_loss_fn(setup)
    schedule = learning_rate_schedule(train_cfg)
    ema_decay = float(train_cfg.ema_decay)
    rules = config.mesh.rules

    def step(state, frozen, batch, rng):
        full_params = state["params"]
        # Gradients and the optimizer see the trainable view only (train/freeze.py; the
        # whole tree when nothing is frozen); frozen leaves come back untouched.
        params = freeze.select(full_params, setup.trainable)

        def view_loss(view, *args):
            return loss_fn(freeze.combine(view, full_params, setup.trainable), *args)

        grad_fn = jax.value_and_grad(view_loss, has_aux=True)

        step_key = jax.random.fold_in(rng, state["step"])
        batch_size = jax.tree.leaves(batch)[0].shape[0]
        if batch_size % accum:
            raise ValueError(
                f"config.train.grad_accum_steps: {accum} does not divide the batch of {batch_size}"
            )
        example_keys = jax.random.split(jax.random.fold_in(step_key, 0), batch_size)
        dropout_key = jax.random.fold_in(step_key, 1)
        if accum == 1:
            (sse, count), grads = grad_fn(params, frozen, batch, example_keys, dropout_key)
        else:
            args = (params, frozen, batch, example_keys, dropout_key)
            grads, sse, count = _accumulated_grads(setup, grad_fn, accum, *args)
        count = jnp.maximum(count, 1.0)
        loss = sse / count
        grads = jax.tree.map(lambda g, p: (g / count).astype(p.dtype), grads, params)
        updates, opt_state = setup.tx.update(grads, state["opt_state"], params)
        new_params = freeze.combine(
            optax.apply_updates(params, updates), full_params, setup.trainable
        )
        new_state = {"step": state["step"] + 1, "params": new_params, "opt_state": opt_state}
        if "ema" in state:
            new_state["ema"] = ema_update(state["ema"], new_params, ema_decay)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(new_params),
            "learning_rate": schedule(state["step"]),
        }
        return new_state, metrics

    def constrained_step(state, frozen, batch, rng):
        with activation_sharding(setup.mesh, rules):
            return step(state, frozen, batch, rng)

    return constrained_step


def jit_train_step(setup: TrainSetup, batch_like: dict):
    """jax.jit of the step with explicit in/out shardings; the state is donated."""
    replicated = NamedSharding(setup.mesh, PartitionSpec())
    metrics_sh = {k: replicated for k in ("loss", "grad_norm", "param_norm", "learning_rate")}
    return jax.jit(
        make_train_step(setup),
        in_shardings=(
            setup.state_shardings,
            setup.frozen_shardings,
            batch_shardings(setup, batch_like),
            replicated,
        ),
        out_shardings=(setup.state_shardings, metrics_sh),
        donate_argnums=(0,),
    )


def abstract_batch(setup: TrainSetup, batch_like: dict) -> dict:
    sh = batch_shardings(setup, batch_like)
    return {
        k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh[k]) for k, v in batch_like.items()
    }


def compile_train_step(setup: TrainSetup, batch_like: dict):
    """Lowers and compiles the step ahead of time; returns the jax Compiled object."""
    rng = jax.ShapeDtypeStruct(
        (2,), jnp.uint32, sharding=NamedSharding(setup.mesh, PartitionSpec())
    )
    return (
        jit_train_step(setup, batch_like)
        .lower(setup.abstract_state, setup.abstract_frozen, abstract_batch(setup, batch_like), rng)
        .compile()
    )


def prepare_local_batch(local_batch: dict) -> dict:
    """Keeps the keys the step reads and pads text to a multiple of TEXT_BUCKET tokens."""
    out = {k: np.asarray(v) for k, v in local_batch.items() if k in USED_KEYS}
    if "text_ids" in out:
        s = out["text_ids"].shape[1]
        pad = -(-s // TEXT_BUCKET) * TEXT_BUCKET - s
        out["text_ids"] = np.pad(out["text_ids"], ((0, 0), (0, pad))).astype(np.int32)
        out["text_mask"] = np.pad(out["text_mask"], ((0, 0), (0, pad))).astype(bool)
    return out


def global_batch(setup: TrainSetup, local_batch: dict) -> dict:
    """Per-process numpy batches -> global jax Arrays sharded over the batch axes."""
    local_batch = prepare_local_batch(local_batch)
    sh = batch_shardings(setup, local_batch)
    return {
        k: jax.make_array_from_process_local_data(sh[k], np.asarray(v))
        for k, v in local_batch.items()
    }
