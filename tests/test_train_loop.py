"""The training loop on the tiny config: it learns, accumulates exactly, and stops on bad input."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx
from train_testlib import tiny_config

from samaudio_jax.checkpoint.orbax_io import ConfigMismatchError, TrainCheckpointer
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.text.factory import build_text_encoder
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib
from samaudio_jax.train.loop import TrainingDivergedError, train
from samaudio_jax.train.synthetic import SyntheticBatches


def _quiet(*args, **kwargs):
    pass


@pytest.mark.slow
def test_loss_decreases_when_overfitting_one_fixed_batch(tmp_path):
    config = tiny_config(
        [
            "--config.train.steps=40",
            "--config.train.checkpoint_every=1000",
            "--config.train.learning_rate=3e-3",
            "--config.train.cond_dropout=0.0",
        ]
    )
    with nnx.use_eager_sharding(False):
        tokenize = build_text_encoder(config.text, rngs=nnx.Rngs(0)).tokenize
    source = SyntheticBatches(
        global_batch=4, num_samples=256, sample_rate=8000, tokenize=tokenize, fixed=True
    )
    result = train(config, tmp_path, batch_source=source, print_fn=_quiet)
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert len(losses) == 40 and all(np.isfinite(losses))
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.5 * first, (first, last)


@pytest.mark.slow
def test_gradient_accumulation_gives_the_full_batch_update():
    config = tiny_config()
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    frozen = state_lib.init_frozen(setup)
    results = []
    for accum in (1, 2):
        cfg = tiny_config([f"--config.train.grad_accum_steps={accum}"])
        variant = dataclasses.replace(setup, config=cfg)
        src = SyntheticBatches(
            global_batch=4, num_samples=256, sample_rate=8000, tokenize=setup.tokenize
        )
        state = state_lib.init_state(setup)
        batches = [step_lib.global_batch(setup, next(src)) for _ in range(2)]
        fn = step_lib.jit_train_step(variant, batches[0])
        losses = []
        for b in batches:
            state, m = fn(state, frozen, b, jax.random.PRNGKey(0))
            losses.append(float(m["loss"]))
        results.append((losses, jax.device_get(state["params"])))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=2e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6),
        results[0][1],
        results[1][1],
    )


class _NaNAt:
    """Synthetic batches whose mixture turns NaN from batch index `bad` on."""

    def __init__(self, inner, bad):
        self.inner, self.bad = inner, bad

    def __iter__(self):
        return self

    def __next__(self):
        i = self.inner.index
        out = next(self.inner)
        if i >= self.bad:
            out["mixture"] = np.full_like(out["mixture"], np.nan)
        return out

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, s):
        self.inner.set_state(s)

    def start_prefetch(self):
        pass


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(["--config.train.steps=8", "--config.train.checkpoint_every=2"])
    source = _NaNAt(SyntheticBatches(global_batch=4, num_samples=256, sample_rate=8000), bad=4)
    with pytest.raises(
        TrainingDivergedError, match=r"step 5: loss is nan.*last good checkpoint is step 4"
    ):
        train(config, tmp_path, batch_source=source, print_fn=_quiet)
    ckpt = TrainCheckpointer(tmp_path / "checkpoints", config)
    assert ckpt.all_steps() == [2, 4]
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    state, _ = ckpt.restore(4, setup.abstract_state)
    leaves = jax.tree.leaves(jax.device_get(state["params"]))
    assert all(np.isfinite(x).all() for x in leaves)
    assert int(state["step"]) == 4
    ckpt.close()

    # The same directory refuses a config whose model differs, naming the field.
    other = tiny_config(["--config.train.steps=8", "--config.model.num_layers=3"])
    with pytest.raises(ConfigMismatchError, match=r"model\.num_layers is 2 there but 3 here"):
        train(other, tmp_path, print_fn=_quiet)
    saved = json.loads((tmp_path / "checkpoints" / "4" / "config" / "metadata").read_text())
    assert saved["model"]["num_layers"] == 2
