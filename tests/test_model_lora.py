"""LoRA adapters: zero-B adapters leave the model exact, merging folds them exactly, training
moves only adapters, export writes the merged plain weights, adapters save and load bit-exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_testlib import tiny_config

from samaudio_jax.model import SAMAudioFlow
from samaudio_jax.model import lora as lora_lib
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.sample.loading import load, save
from samaudio_jax.train import state as state_lib
from samaudio_jax.train.loop import train
from samaudio_jax.train.synthetic import SyntheticBatches
from tests.release_fixtures import tiny_model_config

B, T, S = 2, 12, 5
PER_BLOCK = 11  # default targets: q, k, v, o of both attentions + w1, w2, w3


def inputs(m, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    c = 2 * m.latent_dim
    return dict(
        noisy_audio=jax.random.normal(k[0], (B, T, c)),
        audio_features=jax.random.normal(k[1], (B, T, c)),
        text_features=jax.random.normal(k[2], (B, S, m.text_dim)),
        text_mask=jnp.arange(S)[None] < jnp.array([[S], [3]]),
        time=jnp.array([0.25, 0.8]),
        audio_pad_mask=jnp.arange(T)[None] < jnp.array([[T], [7]]),
    )


@nnx.jit
def run(model, batch):
    return model(**batch, deterministic=True)


def params(model) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def set_params(model, tree) -> None:
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, tree)
    nnx.update(model, state)


def overlay(dst: dict, src: dict) -> dict:
    """dst with every leaf src also has taken from src (the adapters stay dst's)."""
    return {
        k: (overlay(v, src[k]) if isinstance(v, dict) else src[k]) if k in src else v
        for k, v in dst.items()
    }


def adapters(model) -> dict[str, np.ndarray]:
    return lora_lib.adapter_arrays(model)


def lora_model_config(scan_layers: bool, rank: int = 4):
    m = tiny_model_config(scan_layers=scan_layers)
    m.lora.rank, m.lora.alpha = rank, 8.0
    return m


def randomise_b(model, seed=0):
    """Non-zero B everywhere, so the adapters change the output."""
    rng = np.random.default_rng(seed)
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if str(path[-1]) == "b":
            shape = var.get_value().shape
            var.set_value(jnp.asarray(0.2 * rng.normal(size=shape), jnp.float32))


@pytest.mark.parametrize("scan_layers", [False, True])
def test_adapters_with_zero_b_leave_the_base_model_exact(scan_layers):
    plain = SAMAudioFlow(tiny_model_config(scan_layers=scan_layers), rngs=nnx.Rngs(0))
    m = lora_model_config(scan_layers)
    adapted = SAMAudioFlow(m, rngs=nnx.Rngs(1))
    set_params(adapted, overlay(params(adapted), params(plain)))
    found = adapters(adapted)
    assert len(found) == 2 * PER_BLOCK * (1 if scan_layers else m.num_layers)
    assert all(np.all(v == 0) for k, v in found.items() if k.endswith("/b"))
    assert any(np.any(v != 0) for k, v in found.items() if k.endswith("/a"))
    batch = inputs(m)
    np.testing.assert_array_equal(np.asarray(run(adapted, batch)), np.asarray(run(plain, batch)))


@pytest.mark.parametrize("scan_layers", [False, True])
def test_merged_model_equals_the_adapter_model(scan_layers):
    m = lora_model_config(scan_layers)
    adapted = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    randomise_b(adapted)
    batch = inputs(m)
    base_out = np.asarray(run(SAMAudioFlow(m, rngs=nnx.Rngs(0)), batch))
    want = np.asarray(run(adapted, batch))
    assert np.max(np.abs(want - base_out)) > 1e-3  # the adapters do something
    merged = lora_lib.merge_lora(adapted)
    assert adapters(merged) == {} and len(adapters(adapted)) > 0  # a copy; original intact
    np.testing.assert_allclose(np.asarray(run(merged, batch)), want, rtol=1e-5, atol=1e-6)
    # The same on a pure dict, loaded into the plain architecture.
    cfg = tiny_config()
    cfg.model = m
    plain = SAMAudioFlow(lora_lib.without_lora(cfg).model, rngs=nnx.Rngs(5))
    set_params(plain, lora_lib.merge_lora_params(params(adapted), m.lora))
    np.testing.assert_allclose(np.asarray(run(plain, batch)), want, rtol=1e-5, atol=1e-6)


def test_bad_lora_config_names_the_field():
    m = lora_model_config(False)
    m.lora.targets = ("attention.wq", "attention.w9")
    with pytest.raises(ValueError, match=r"config.model.lora.targets: unknown 'attention.w9'"):
        SAMAudioFlow(m, rngs=nnx.Rngs(0))
    m = lora_model_config(False)
    m.lora.alpha = 0.0
    with pytest.raises(ValueError, match=r"config.model.lora.alpha: expected > 0"):
        SAMAudioFlow(m, rngs=nnx.Rngs(0))


def _flat(tree):
    return {
        jax.tree_util.keystr(p): np.asarray(x)
        for p, x in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    }


@pytest.mark.slow
def test_lora_fine_tuning_moves_only_adapters_and_exports_merged_weights(tmp_path):
    extra = [
        "--config.model.lora.rank=4",
        "--config.model.lora.alpha=8.0",
        "--config.train.steps=4",
        "--config.train.checkpoint_every=4",
        "--config.train.warmup_steps=0",
    ]
    config = tiny_config(extra)
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    before = _flat(state_lib.init_state(setup)["params"])
    source = SyntheticBatches(
        global_batch=4, num_samples=256, sample_rate=8000, tokenize=setup.tokenize
    )
    train(config, tmp_path / "run", batch_source=source, print_fn=lambda *a, **k: None)

    from samaudio_jax.checkpoint.workdir import latest_step

    assert latest_step(tmp_path / "run") == 4
    sep = load(tmp_path / "run")
    after = {"['flow']" + k: v for k, v in _flat(params(sep.model)).items()}
    after.update({"['text']" + k: v for k, v in _flat(params(sep.text_encoder)).items()})
    assert after.keys() == before.keys()
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    is_adapter = lambda k: "_lora']" in k  # noqa: E731
    assert moved and all(is_adapter(k) for k in moved), sorted(moved)[:5]
    assert any(k.endswith("['b']") for k in moved)
    for k in before:
        if not is_adapter(k):
            assert before[k].tobytes() == after[k].tobytes(), k
    adapter_elements = sum(v.size for k, v in before.items() if is_adapter(k))
    moments = sum(
        int(np.prod(x.shape)) for x in jax.tree.leaves(setup.abstract_state["opt_state"]) if x.shape
    )
    assert moments == 2 * adapter_elements

    # Merged forward == adapter forward.
    m = config.model
    batch = inputs(m)
    want = np.asarray(run(sep.model, batch))
    np.testing.assert_allclose(
        np.asarray(run(lora_lib.merge_lora(sep.model), batch)), want, rtol=1e-5, atol=1e-6
    )

    # Export writes the plain (merged) weights; importing them gives the same outputs.
    save(sep, tmp_path / "export")
    again = load(tmp_path / "export")
    assert again.config.model.lora.rank == 0 and adapters(again.model) == {}
    np.testing.assert_allclose(np.asarray(run(again.model, batch)), want, rtol=1e-5, atol=1e-6)

    # Adapters alone: save, load onto a fresh base, bit-exact.
    written = lora_lib.save_adapters(tmp_path / "adapters", sep.model, m)
    assert [p.split("/")[-1] for p in written] == ["adapters.safetensors", "adapter_config.json"]
    fresh = load(tmp_path / "run")
    randomise_b(fresh.model, seed=9)
    lora_lib.load_adapters(tmp_path / "adapters", fresh.model, m)
    saved, loaded = adapters(sep.model), adapters(fresh.model)
    assert saved.keys() == loaded.keys()
    for k in saved:
        assert saved[k].tobytes() == loaded[k].tobytes(), k
    np.testing.assert_array_equal(np.asarray(run(fresh.model, batch)), want)
    other = m.copy_and_resolve_references()
    other.lora.rank = 8
    with pytest.raises(ValueError, match=r"adapter_config.json: lora is .* the model has"):
        lora_lib.load_adapters(tmp_path / "adapters", SAMAudioFlow(other, rngs=nnx.Rngs(0)), other)
