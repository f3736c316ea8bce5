"""The text-feature cache and offline precomputation."""

import numpy as np
import pytest
from flax import nnx

from samaudio_jax.config_schema import default_config
from samaudio_jax.text import build_text_encoder
from samaudio_jax.text.cache import (
    TextFeatureCache,
    precompute_text_features,
    stack_text_features,
)


def _encoder(bucket_length=0):
    cfg = default_config().text
    cfg.kind = "small"
    cfg.bucket_length = bucket_length
    cfg.small.dim = 16
    cfg.small.num_layers = 1
    cfg.small.num_heads = 2
    cfg.small.max_length = 32
    with nnx.use_eager_sharding(False):
        return build_text_encoder(cfg, rngs=nnx.Rngs(3))


class _Spy:
    """Wraps tokenize to record which strings reached the encoder."""

    def __init__(self, encoder):
        self.calls = []
        self._tokenize = encoder.tokenize
        encoder.tokenize = self

    def __call__(self, texts):
        self.calls.append(list(texts))
        return self._tokenize(texts)


@pytest.mark.parametrize("bucket_length", [0, 8])
def test_cache_returns_the_same_features_as_a_fresh_encode(bucket_length):
    enc = _encoder(bucket_length)
    texts = ["a dog barks", "", "a dog barks", "rain falling on a tin roof"]
    fresh, fresh_mask = enc.encode(texts)
    cache = TextFeatureCache(enc)
    cached, mask = cache(texts)
    np.testing.assert_array_equal(mask, fresh_mask)
    np.testing.assert_allclose(cached, np.asarray(fresh), rtol=1e-5, atol=1e-6)
    again, _ = cache(texts)  # now entirely from the cache
    np.testing.assert_array_equal(again, cached)


def test_identical_strings_are_encoded_once_and_new_strings_are_encoded():
    enc = _encoder()
    cache = TextFeatureCache(enc)
    spy = _Spy(enc)
    first, _ = cache(["a dog", "a dog", "birds"])
    assert spy.calls == [["a dog", "birds"]] and cache.encoder_calls == 1
    cache(["birds", "a dog"])
    assert cache.encoder_calls == 1 and len(spy.calls) == 1
    other, _ = cache(["a dog ", "a dog"])  # differs by a trailing space: a different prompt
    assert spy.calls[-1] == ["a dog "] and cache.encoder_calls == 2
    fresh, _ = enc.encode(["a dog "])
    np.testing.assert_allclose(other[0], np.asarray(fresh)[0], rtol=1e-5, atol=1e-6)
    assert np.abs(other[0, : first.shape[1]] - first[0]).max() > 1e-4


def test_cache_evicts_least_recently_used_beyond_max_entries():
    cache = TextFeatureCache(_encoder(), max_entries=2)
    cache(["a"])
    cache(["b"])
    cache(["a"])
    cache(["c"])
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2


def test_precomputed_features_match_encoding_and_restack_into_batches():
    enc = _encoder()
    descriptions = ["cat", "a loud car engine", "cat", "", "violin"]
    spy = _Spy(enc)
    rows = precompute_text_features(enc, descriptions, batch_size=2, dtype=np.float16)
    assert sum(len(c) for c in spy.calls) == 4  # four distinct descriptions
    assert [r.dtype for r in rows] == [np.float16] * 5
    feats, mask = stack_text_features(rows, max_length=enc.max_length)
    fresh, fresh_mask = enc.encode(descriptions)
    np.testing.assert_array_equal(mask, fresh_mask)
    np.testing.assert_allclose(feats.astype(np.float32), np.asarray(fresh), rtol=2e-3, atol=2e-3)


def test_stack_rejects_mismatched_widths():
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        stack_text_features([np.zeros((2, 4)), np.zeros((2, 5))], max_length=8)
