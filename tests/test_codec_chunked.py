"""Chunked DACVAE decoding: equal to whole decoding, with memory flat in the length."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from samaudio_jax.codec.base import CodecWeight
from samaudio_jax.codec.chunked import decode_chunked
from samaudio_jax.codec.dacvae import DacVaeCodec

HOP = 8


def _perturbed_codec():
    codec = DacVaeCodec(
        encoder_dim=4,
        encoder_rates=(2, 4),
        encoder_hidden_dim=16,
        latent_dim=8,
        decoder_dim=48,
        decoder_rates=(4, 2),
        wm_rates=(2, 2),
        wm_msg_dim=8,
    )
    rng = np.random.default_rng(0)
    for path, var in nnx.to_flat_state(nnx.state(codec, CodecWeight)):
        name, shape = path[-1], var.shape
        if name in ("bias", "alpha"):
            var.set_value(jnp.asarray(rng.uniform(0.5, 1.5, shape) - (name == "bias"), jnp.float32))
    return codec


@pytest.fixture(scope="module")
def split_codec():
    return nnx.split(_perturbed_codec())


def _fns(graphdef):
    def whole(state, z):
        return nnx.merge(graphdef, state).decode(z)

    def chunked(state, z, chunk, overlap, fade):
        return decode_chunked(nnx.merge(graphdef, state), z, chunk, overlap, fade_frames=fade)

    return jax.jit(whole), jax.jit(chunked, static_argnums=(2, 3, 4))


@pytest.mark.parametrize("fade", [0, 4])
def test_chunked_decode_equals_whole_decode_when_context_covers_the_receptive_field(
    split_codec, fade
):
    # This small decoder sees ~19 latent frames each side; 24 frames of context cover it.
    graphdef, state = split_codec
    whole, chunked = _fns(graphdef)
    z = jnp.asarray(np.random.default_rng(1).standard_normal((2, 45, 8)), jnp.float32)
    want = np.asarray(whole(state, z))
    got = np.asarray(chunked(state, z, 16, 24, fade))
    assert got.shape == want.shape == (2, 45 * HOP)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_short_context_errs_only_near_chunk_boundaries(split_codec):
    graphdef, state = split_codec
    whole, chunked = _fns(graphdef)
    z = jnp.asarray(np.random.default_rng(2).standard_normal((1, 48, 8)), jnp.float32)
    want = np.asarray(whole(state, z))[0]
    err = np.abs(np.asarray(chunked(state, z, 16, 4, 4))[0] - want) / np.abs(want).max()
    frame_err = err.reshape(48, HOP).max(axis=1)
    # Sequence ends are masked exactly like whole decoding; chunk boundaries (16, 32) are not.
    assert frame_err[:2].max() <= 1e-4 and frame_err[-2:].max() <= 1e-4
    assert frame_err[14:18].max() > 1e-3


@pytest.mark.slow
def test_chunked_decode_peak_memory_stays_flat_as_length_grows(split_codec):
    graphdef, state = split_codec
    whole, chunked = _fns(graphdef)

    def temp_bytes(fn, frames, *static):
        spec = jax.ShapeDtypeStruct((1, frames, 8), jnp.float32)
        return fn.lower(state, spec, *static).compile().memory_analysis().temp_size_in_bytes

    short, long = temp_bytes(chunked, 32, 8, 4, 4), temp_bytes(chunked, 512, 8, 4, 4)
    assert long < 1.2 * short
    # Whole decoding of the same lengths does grow (so the measure can tell).
    assert temp_bytes(whole, 512) > 3 * temp_bytes(whole, 32)


def test_chunked_decode_rejects_a_fade_wider_than_its_context(split_codec):
    graphdef, state = split_codec
    codec = nnx.merge(graphdef, state)
    with pytest.raises(ValueError, match="fade_frames"):
        decode_chunked(codec, jnp.zeros((1, 8, 8)), 4, 1, fade_frames=3)
