"""Finds the demo recipe: trains configs/demo.py for a fixed step count, prints SI-SDRi vs steps.

A compact stand-in for the real trainer: the synthetic corpus is loaded into memory once,
mixtures are made on device inside the jitted train step (target + one source of another
class at an SNR drawn from data.snr_db), the flow network and the small text encoder are
trained together with clean-latent prediction (MSE on the clean target and residual
latents, t ~ U(0, 1)), and held-out mixtures from the test split are separated with a
midpoint sampler (v = (x_hat - x_t) / (1 - t)) at the steps listed by --eval-at.

    PYTHONPATH=. python bench/demo_recipe.py --workdir /tmp/demo \
        [--config configs/demo.py] [--eval-at 250,500,1000] [--config.train.steps=2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.codec import frames
from samaudio_jax.codec.factory import build_codec
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import SOUND_CLASSES, write_synth_corpus
from samaudio_jax.eval.metrics import si_sdr_improvement
from samaudio_jax.model import SAMAudioFlow
from samaudio_jax.text import build_text_encoder


class DemoNet(nnx.Module):
    """The flow network and the text encoder, trained together."""

    def __init__(self, config, rngs: nnx.Rngs):
        self.flow = SAMAudioFlow(config.model, rngs=rngs)
        with nnx.use_eager_sharding(False):
            self.text = build_text_encoder(config.text, rngs=rngs)


def load_clips(directory: Path, classes, rms_db: float) -> np.ndarray:
    """(C, n, S) float32 clips grouped by class, each scaled to `rms_db` dBFS RMS."""
    reader = ShardReader(directory)
    by_class = {name: [] for name in classes}
    for i in range(len(reader)):
        rec = reader[i]
        by_class[rec["id"].split("/")[1]].append(rec["audio"])
    clips = np.stack([np.stack(by_class[name]) for name in classes]).astype(np.float32)
    rms = np.sqrt(np.mean(clips**2, axis=-1, keepdims=True)) + 1e-8
    return clips * (10 ** (rms_db / 20) / rms)


def mix_batch(key, clips, batch: int, snr_db, roll: bool):
    """Target + one clip of another class at SNR ~ U(snr_db); returns (mix, tgt, res, class)."""
    c, n, s = clips.shape
    k = jax.random.split(key, 6)
    cls = jax.random.randint(k[0], (batch,), 0, c)
    other = (cls + jax.random.randint(k[1], (batch,), 1, c)) % c
    tgt = clips[cls, jax.random.randint(k[2], (batch,), 0, n)]
    res = clips[other, jax.random.randint(k[3], (batch,), 0, n)]
    snr = jax.random.uniform(k[4], (batch, 1), minval=snr_db[0], maxval=snr_db[1])
    res = res * 10 ** (-snr / 20)
    if roll:
        shifts = jax.random.randint(k[5], (batch, 2), 0, s)
        tgt = jax.vmap(jnp.roll)(tgt, shifts[:, 0])
        res = jax.vmap(jnp.roll)(res, shifts[:, 1])
    return tgt + res, tgt, res, cls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--eval-at", default="", help="comma-separated steps (final always)")
    parser.add_argument("--eval-mixtures", type=int, default=200)
    parser.add_argument("--no-roll", action="store_true", help="no random circular shifts")
    args, overrides = parser.parse_known_args()
    cfg = load_config(args.config, overrides)
    work = Path(args.workdir)
    t_start = time.perf_counter()

    d, tr = cfg.data, cfg.train
    classes = tuple(d.synth.classes)
    if not (work / "corpus" / "test" / "index.json").exists():
        write_synth_corpus(
            work / "corpus",
            seed=cfg.seed,
            classes=classes,
            sample_rate=d.sample_rate,
            clip_seconds=d.synth.clip_seconds,
            train_per_class=d.synth.train_per_class,
            test_per_class=d.synth.test_per_class,
            overwrite=True,
        )
    train_clips = jnp.asarray(load_clips(work / "corpus" / "train", classes, d.target_rms_db))
    test_clips = jnp.asarray(load_clips(work / "corpus" / "test", classes, d.target_rms_db))
    snr = tuple(float(v) for v in d.snr_db)
    hop = cfg.codec.hop_length

    scale_mix = mix_batch(jax.random.key(7), train_clips, 1024, snr, not args.no_roll)[0]
    scale_path = str(work / "latent_scale.npy")
    frames.save_latent_scale(scale_path, frames.measure_latent_scale([scale_mix], hop))
    cfg.codec.latent_scale = scale_path
    codec = build_codec(cfg.codec)
    t_data = time.perf_counter() - t_start

    net = DemoNet(cfg, nnx.Rngs(cfg.seed))
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    prompts = [SOUND_CLASSES[name].description for name in classes]
    text_ids, text_mask = (jnp.asarray(a) for a in net.text.tokenize(prompts))

    warmup = min(int(tr.warmup_steps), int(tr.steps) // 10)
    sched = optax.warmup_cosine_decay_schedule(
        0.0, tr.learning_rate, warmup, tr.steps, end_value=tr.learning_rate * 0.01
    )
    tx = optax.chain(
        optax.clip_by_global_norm(tr.grad_clip_norm),
        optax.adamw(sched, b1=tr.b1, b2=tr.b2, weight_decay=tr.weight_decay),
    )
    opt_state = tx.init(params)

    def predict(params, x_t, mix_lat, cls, t):
        model = nnx.merge(graphdef, params, rest)
        feats = model.text(text_ids, text_mask)
        return model.flow(
            x_t, jnp.concatenate([mix_lat, mix_lat], -1), feats[cls], text_mask[cls], t
        )

    def loss_fn(params, key):
        k_mix, k_t, k_n = jax.random.split(key, 3)
        mix, tgt, res, cls = mix_batch(k_mix, train_clips, tr.global_batch_size, snr, True)
        mix_lat = codec.encode(mix)
        x1 = jnp.concatenate([codec.encode(tgt), codec.encode(res)], -1)
        t = jax.random.uniform(k_t, (x1.shape[0],))
        x0 = jax.random.normal(k_n, x1.shape)
        x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        return jnp.mean((predict(params, x_t, mix_lat, cls, t) - x1) ** 2)

    @jax.jit
    def train_step(params, opt_state, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def separate(params, mix, cls, key):
        mix_lat = codec.encode(mix)
        b, t_len, n = mix_lat.shape
        x = jax.random.normal(key, (b, t_len, 2 * n))
        steps = cfg.sample.steps
        h = 1.0 / steps

        def velocity(x, t):
            x_hat = predict(params, x, mix_lat, cls, jnp.full((b,), t))
            return (x_hat - x) / (1 - t), x_hat

        def body(x, i):
            t = i * h
            v, x_hat = velocity(x, t)
            v_mid, _ = velocity(x + 0.5 * h * v, t + 0.5 * h)
            return x + h * v_mid, x_hat

        x, first = jax.lax.scan(body, x, jnp.arange(steps, dtype=jnp.float32))
        return codec.decode(x[..., :n]), codec.decode(first[0][..., :n])

    eval_mix, eval_tgt, _, eval_cls = mix_batch(
        jax.random.key(1234), test_clips, args.eval_mixtures, snr, False
    )

    def evaluate(params):
        est, one_shot = separate(params, eval_mix, eval_cls, jax.random.key(99))
        ref, mix = np.asarray(eval_tgt), np.asarray(eval_mix)
        sdri = si_sdr_improvement(ref, np.asarray(est), mix)
        sdri1 = si_sdr_improvement(ref, np.asarray(one_shot), mix)
        return np.median(sdri), np.mean(sdri), np.median(sdri1)

    eval_at = sorted({int(s) for s in args.eval_at.split(",") if s} | {int(tr.steps)})
    print(f"params {n_params / 1e6:.2f}M  data+scale {t_data:.1f}s  steps {tr.steps}")
    print("step  train_s  cpu_s  steps/s  loss    SI-SDRi median  mean  (x_hat at t=0: median)")
    key = jax.random.key(cfg.seed + 1)
    t_train, t0, losses = 0.0, time.perf_counter(), []
    cpu_train, c0 = 0.0, time.process_time()
    for step in range(1, tr.steps + 1):
        params, opt_state, loss = train_step(params, opt_state, jax.random.fold_in(key, step))
        losses.append(loss)
        if step in eval_at:
            jax.block_until_ready(params)
            t_train += time.perf_counter() - t0
            cpu_train += time.process_time() - c0
            med, mean, med1 = evaluate(params)
            loss_avg = float(np.mean(jax.device_get(losses[-50:])))
            print(
                f"{step:5d} {t_train:8.1f} {cpu_train:6.1f} {step / t_train:7.2f}  {loss_avg:.4f}  "
                f"{med:6.2f}  {mean:6.2f}  ({med1:6.2f})",
                flush=True,
            )
            t0, c0 = time.perf_counter(), time.process_time()
    print(f"total wall {time.perf_counter() - t_start:.1f}s")


if __name__ == "__main__":
    main()
