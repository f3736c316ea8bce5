"""The small trainable text encoder: tokenization, padding invariance, gradients, sharding names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from samaudio_jax.config_schema import default_config
from samaudio_jax.text import TextEncoder, build_text_encoder
from samaudio_jax.text.base import padded_length
from samaudio_jax.text.simple_tokenizers import EOS_ID


def _small(vocab="bytes", bucket_length=0, seed=0):
    cfg = default_config().text
    cfg.kind = "small"
    cfg.bucket_length = bucket_length
    cfg.small.dim = 32
    cfg.small.num_layers = 2
    cfg.small.num_heads = 4
    cfg.small.vocab = vocab
    cfg.small.max_length = 24
    with nnx.use_eager_sharding(False):
        return build_text_encoder(cfg, rngs=nnx.Rngs(seed))


@pytest.mark.parametrize("vocab", ["bytes", "words"])
def test_empty_prompt_is_one_valid_eos_token(vocab):
    enc = _small(vocab)
    ids, mask = enc.tokenize([""])
    assert ids.dtype == np.int32 and mask.dtype == np.bool_
    assert ids.shape == (1, 1) and mask.tolist() == [[True]] and ids[0, 0] == EOS_ID
    feats = enc(jnp.asarray(ids), jnp.asarray(mask))
    assert feats.shape == (1, 1, 32) and feats.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(feats)))


@pytest.mark.parametrize("vocab", ["bytes", "words"])
def test_different_strings_give_different_features(vocab):
    enc = _small(vocab)
    assert isinstance(enc, TextEncoder) and enc.trainable and enc.dim == 32
    feats, mask = enc.encode(["a dog barking", "a man speaking", ""])
    feats = np.asarray(feats)
    pooled = [feats[i][mask[i]].mean(0) for i in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(pooled[i] - pooled[j]).max() > 1e-3


def test_padding_does_not_change_valid_token_features():
    enc = _small()
    alone, mask_alone = enc.encode(["dog"])
    batch, mask_batch = enc.encode(["dog", "a much longer prompt about rain on a roof"])
    n = int(mask_alone.sum())
    assert mask_batch.shape[1] > n and mask_batch[0].sum() == n
    np.testing.assert_allclose(
        np.asarray(batch)[0, :n], np.asarray(alone)[0, :n], rtol=1e-5, atol=1e-6
    )
    assert np.all(np.asarray(batch)[0, n:] == 0.0)


def test_bucket_length_rounds_sequence_length_up_and_caps_at_max_length():
    enc = _small(bucket_length=8)
    ids, mask = enc.tokenize(["abc", "abcdefghij"])  # 4 and 11 tokens -> 16
    assert ids.shape == (2, 16) and mask.sum(1).tolist() == [4, 11]
    ids, _ = enc.tokenize(["x" * 100])  # truncated to max_length 24 -> 24
    assert ids.shape == (1, 24)
    assert padded_length(17, bucket_length=8, max_length=20) == 20
    assert padded_length(5, bucket_length=0, max_length=20) == 5


def test_gradients_reach_every_parameter():
    enc = _small()
    ids, mask = enc.tokenize(["rain on a roof", "birds"])
    ids, mask = jnp.asarray(ids), jnp.asarray(mask)
    target = jax.random.normal(jax.random.key(1), (2, ids.shape[1], 32))

    def loss_fn(model):
        return jnp.mean((model(ids, mask) - target) ** 2)

    grads = nnx.grad(loss_fn)(enc)
    leaves = jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(grads))
    assert len(leaves) == 1 + 2 * 8 + 1  # embedding, 8 per layer, final norm
    for path, g in leaves:
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), path
        assert np.abs(g).max() > 0.0, path


def test_runs_inside_jit_with_split_state():
    enc = _small()
    graphdef, state = nnx.split(enc)
    ids, mask = enc.tokenize(["thunder", "a cat"])

    @jax.jit
    def run(state, ids, mask):
        return nnx.merge(graphdef, state)(ids, mask)

    np.testing.assert_allclose(
        np.asarray(run(state, ids, mask)), np.asarray(enc(ids, mask)), rtol=1e-5, atol=1e-6
    )


def test_every_parameter_has_logical_axis_names():
    enc = _small()
    specs = nnx.get_partition_spec(nnx.state(enc, nnx.Param))
    names = set()
    for path, spec in jax.tree_util.tree_leaves_with_path(
        specs, is_leaf=lambda x: isinstance(x, nnx.Param)
    ):
        axes = spec.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == len(spec.get_value()), path
        names.update(axes)
    assert names == {"vocab", "embed", "mlp", "heads", "kv", "norm"}


def test_bad_config_names_the_field():
    cfg = default_config().text
    cfg.kind = "bert"
    with pytest.raises(ValueError, match="text.kind"):
        build_text_encoder(cfg, rngs=nnx.Rngs(0))
    cfg.kind = "small"
    cfg.small.vocab = "chars"
    with pytest.raises(ValueError, match="text.small.vocab"):
        build_text_encoder(cfg, rngs=nnx.Rngs(0))
    cfg.small.vocab = "bytes"
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        _small().tokenize(["ok", 3])
