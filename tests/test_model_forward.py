"""The flow network's forward pass: shapes, conditioning paths, masks, options, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from samaudio_jax.config_schema import default_config
from samaudio_jax.model import SAMAudioFlow
from samaudio_jax.model.flow import mixture_log_magnitude
from tests.release_fixtures import numpy_init_flow, tiny_model_config

B, T, S = 2, 12, 5


def inputs(seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    return dict(
        noisy_audio=jax.random.normal(k[0], (B, T, 16)),
        audio_features=jax.random.normal(k[1], (B, T, 16)),
        text_features=jax.random.normal(k[2], (B, S, 24)),
        text_mask=jnp.arange(S)[None] < jnp.array([[S], [3]]),
        time=jnp.array([0.25, 0.8]),
        audio_pad_mask=jnp.arange(T)[None] < jnp.array([[T], [7]]),
    )


@nnx.jit(static_argnames=("deterministic",))
def run(model, batch, deterministic=True):
    return model(**batch, deterministic=deterministic)


def with_gates_open(model):
    model.align_masked_video.gate[...] = jnp.full((1,), 0.7)
    model.embed_anchors.gate[...] = jnp.full((1,), 0.5)
    return model


@pytest.mark.parametrize("scan_layers", [False, True])
def test_forward_shape_and_text_changes_output(scan_layers):
    m = tiny_model_config(scan_layers=scan_layers)
    # The real initialiser once (stacked blocks via vmap); numpy weights elsewhere (fast).
    model = SAMAudioFlow(m, rngs=nnx.Rngs(0)) if scan_layers else numpy_init_flow(m, 0)
    batch = inputs()
    out = run(model, batch)
    assert out.shape == (B, T, 16) and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    other = dict(batch, text_features=batch["text_features"] + 1.0)
    assert float(jnp.max(jnp.abs(run(model, other) - out))) > 1e-3
    no_text = dict(batch, text_features=None, text_mask=None)
    assert float(jnp.max(jnp.abs(run(model, no_text) - out))) > 1e-3


def test_masked_text_tokens_do_not_matter():
    model = numpy_init_flow(tiny_model_config(), 1)
    batch = inputs()
    out = run(model, batch)
    changed = batch["text_features"].at[1, 3:].set(5.0)  # example 1 has 3 valid tokens
    np.testing.assert_allclose(run(model, dict(batch, text_features=changed)), out, atol=1e-6)


def test_padded_audio_frames_do_not_reach_valid_frames_with_padding_aware_groupnorm():
    model = numpy_init_flow(tiny_model_config(padding_aware_groupnorm=True), 2)
    batch = inputs()
    out = run(model, batch)
    # Example 1 has 7 valid frames: change every padded frame, the first one included.
    noisy = batch["noisy_audio"].at[1, 7:].add(3.0)
    out2 = run(model, dict(batch, noisy_audio=noisy))
    np.testing.assert_allclose(out2[1, :7], out[1, :7], atol=1e-5)
    assert float(jnp.max(jnp.abs(out2[1, 7:] - out[1, 7:]))) > 1e-3
    # Without the mask the same change does reach the valid frames.
    unmasked = dict(batch, audio_pad_mask=None)
    a = run(model, unmasked)
    b = run(model, dict(unmasked, noisy_audio=noisy))
    assert float(jnp.max(jnp.abs(a[1, :7] - b[1, :7]))) > 1e-4


def test_padding_aware_groupnorm_equals_release_without_padding():
    base = numpy_init_flow(tiny_model_config(), 3)
    aware = numpy_init_flow(tiny_model_config(padding_aware_groupnorm=True), 3)
    batch = dict(inputs(), audio_pad_mask=jnp.ones((B, T), bool))
    np.testing.assert_allclose(run(aware, batch), run(base, batch), rtol=1e-5, atol=1e-5)


def test_video_and_spans_change_output_once_gates_open():
    model = with_gates_open(numpy_init_flow(tiny_model_config(), 4))
    batch = inputs()
    out = run(model, batch)
    video = jax.random.normal(jax.random.key(9), (B, 20, T))
    assert (
        float(jnp.max(jnp.abs(run(model, dict(batch, masked_video_features=video)) - out))) > 1e-3
    )
    ids = jnp.array([[0, 3, 1], [0, 3, 2]])
    align = jnp.zeros((B, T), jnp.int32).at[:, 2:5].set(2)
    spans = dict(batch, anchor_ids=ids, anchor_alignment=align)
    assert float(jnp.max(jnp.abs(run(model, spans) - out))) > 1e-3


def test_null_anchors_equal_the_release_default_encoding():
    model = with_gates_open(numpy_init_flow(tiny_model_config(), 5))
    batch = inputs()
    ids = jnp.tile(jnp.array([[0, 3]]), (B, 1))
    align = jnp.where(batch["audio_pad_mask"], 0, 1)
    explicit = dict(batch, anchor_ids=ids, anchor_alignment=align)
    np.testing.assert_allclose(run(model, explicit), run(model, batch), atol=1e-6)


def test_dropout_only_when_not_deterministic():
    model = numpy_init_flow(tiny_model_config(dropout=0.3), 6)
    batch = inputs()
    a, b = run(model, batch), run(model, batch)
    np.testing.assert_array_equal(a, b)
    c = run(model, batch, deterministic=False)
    d = run(model, batch, deterministic=False)
    assert float(jnp.max(jnp.abs(c - a))) > 1e-3
    assert float(jnp.max(jnp.abs(c - d))) > 1e-3  # the model's dropout stream advances


def test_bf16_compute_with_f32_params_is_close_to_f32():
    f32 = numpy_init_flow(tiny_model_config(), 7)
    bf16 = numpy_init_flow(tiny_model_config(dtype="bfloat16"), 7)
    leaves = jax.tree.leaves(nnx.state(bf16, nnx.Param))
    assert all(x.dtype == jnp.float32 for x in leaves)
    batch = inputs()
    ref, low = run(f32, batch), run(bf16, batch)
    rel = float(jnp.linalg.norm(low - ref) / jnp.linalg.norm(ref))
    assert rel < 3e-2, rel


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["full", "dots_no_batch"])
def test_remat_policies_keep_outputs_and_gradients(policy):
    plain = numpy_init_flow(tiny_model_config(scan_layers=True), 8)
    remat = numpy_init_flow(tiny_model_config(scan_layers=True, remat_policy=policy), 8)
    batch = inputs()

    def loss(model):
        return jnp.mean(model(**batch) ** 2)

    grad_fn = nnx.jit(nnx.value_and_grad(loss))
    la, ga = grad_fn(plain)
    lb, gb = grad_fn(remat)
    np.testing.assert_allclose(lb, la, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)

    def jaxpr_text(model):
        graphdef, state = nnx.split(model)
        return str(jax.make_jaxpr(lambda st: loss(nnx.merge(graphdef, st)))(state))

    assert "remat" in jaxpr_text(remat) and "remat" not in jaxpr_text(plain)


def test_gated_mix_head_splits_the_mixture_by_a_sigmoid_mask():
    model = numpy_init_flow(tiny_model_config(head="gated_mix"), 10)
    assert model.transformer.output.kernel.shape == (32, 24)  # (m, d_t, d_r) per token
    batch = inputs()
    mix = batch["audio_features"][..., :8]
    kernel = model.transformer.output.kernel[...]
    # Only the mask logits m left: target + residual is exactly the mixture.
    model.transformer.output.kernel[...] = kernel.at[:, 8:].set(0.0)
    out = run(model, batch)
    np.testing.assert_allclose(out[..., :8] + out[..., 8:], mix, atol=1e-5)
    assert float(jnp.max(jnp.abs(out[..., :8] - 0.5 * mix))) > 1e-3  # m is not constant
    # Nothing left: m = 0, each stream gets half of the mixture.
    model.transformer.output.kernel[...] = jnp.zeros_like(kernel)
    out = run(model, batch)
    np.testing.assert_allclose(out, jnp.concatenate([0.5 * mix, 0.5 * mix], -1), atol=1e-6)


def test_every_parameter_has_logical_axes():
    rules = dict(default_config().mesh.rules)
    model = nnx.eval_shape(
        lambda: SAMAudioFlow(tiny_model_config(scan_layers=True), rngs=nnx.Rngs(0))
    )
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = var.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == var.shape.__len__(), path
        assert all(a is None or a in rules for a in axes), (path, axes)
    assert model.transformer.layers.attention.wq.get_metadata()["out_sharding"][0] == "layers"


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="model.head"):
        nnx.eval_shape(lambda: SAMAudioFlow(tiny_model_config(head="nope"), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="model.remat_policy"):
        nnx.eval_shape(
            lambda: SAMAudioFlow(tiny_model_config(remat_policy="some"), rngs=nnx.Rngs(0))
        )


def test_text_to_adaln_adds_pooled_valid_text_only():
    base = numpy_init_flow(tiny_model_config(), 12)
    pooled = numpy_init_flow(tiny_model_config(text_to_adaln=True), 12)
    batch = inputs()
    no_text = dict(batch, text_features=None, text_mask=None)
    np.testing.assert_allclose(run(pooled, no_text), run(base, no_text), atol=1e-6)
    out = run(pooled, batch)
    assert float(jnp.max(jnp.abs(out - run(base, batch)))) > 1e-3
    changed = batch["text_features"].at[1, 3:].set(5.0)  # padded tokens of example 1
    np.testing.assert_allclose(run(pooled, dict(batch, text_features=changed)), out, atol=1e-6)


def test_dropout_with_explicit_rngs_is_reproducible():
    model = numpy_init_flow(tiny_model_config(dropout=0.3), 13)
    batch = inputs()

    @nnx.jit
    def noisy(model, key):
        return model(**batch, deterministic=False, rngs=nnx.Rngs(dropout=key))

    a, b = noisy(model, jax.random.key(1)), noisy(model, jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - noisy(model, jax.random.key(2))))) > 1e-3


def test_mixture_magnitude_feeds_log_abs_mixture_to_the_projection():
    base = numpy_init_flow(tiny_model_config(), 14)
    mag = numpy_init_flow(tiny_model_config(mixture_magnitude=True), 14)
    assert base.proj.kernel.shape == (48, 32) and mag.proj.kernel.shape == (56, 32)
    batch = inputs()
    flipped = batch["audio_features"].at[..., :8].multiply(-1.0)  # the mixture's sign
    louder = batch["audio_features"].at[..., :8].multiply(3.0)
    for model in (base, mag):  # cut the signed mixture's rows: only |mixture| may enter
        kernel = model.proj.kernel[...]
        model.proj.kernel[...] = kernel.at[32:48].set(0.0)
    out = run(mag, batch)
    np.testing.assert_allclose(run(mag, dict(batch, audio_features=flipped)), out, atol=1e-6)
    assert float(jnp.max(jnp.abs(run(mag, dict(batch, audio_features=louder)) - out))) > 1e-3
    # Without the view nothing of the mixture is left.
    ref = run(base, batch)
    np.testing.assert_allclose(run(base, dict(batch, audio_features=louder)), ref, atol=1e-6)
    # The view is log(|mixture| + 0.01) of the first latent_dim channels only.
    view = mixture_log_magnitude(batch["audio_features"], 8)
    np.testing.assert_allclose(
        view, np.log(np.abs(np.asarray(batch["audio_features"])[..., :8]) + 0.01), rtol=1e-6
    )
