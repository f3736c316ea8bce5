"""Our flow network equals mlx-audio's SAM Audio port (itself ~1e-6 from the release) on the
same release-layout weights, and the video-align path equals a plain torch rendering of it.

mlx-audio leaves align_masked_video out, so the whole-network comparison adds the torch
align term to mlx-audio's pre-DiT input. Tolerance: 1e-4 relative (L2) in float32.
"""

from __future__ import annotations

import jax.numpy as jnp
import mlx.core as mx
import numpy as np
import pytest
import torch

from samaudio_jax.model.factory import build_flow, flow_arrays_from_state_dict
from tests.mlx_reference import mlx_reference
from tests.release_fixtures import random_release_state_dict, small_model_config

B, T, S = 2, 14, 6
RTOL = 1e-4


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def torch_align_term(state, video: np.ndarray) -> np.ndarray:
    """tanh(gate) * LayerNorm(Conv1d_k1(video)) as (B, T, D), in plain torch."""
    w = torch.from_numpy(state["align_masked_video.conv.weight"])
    conv = torch.nn.Conv1d(w.shape[1], w.shape[0], 1)
    ln = torch.nn.LayerNorm(w.shape[0])
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(torch.from_numpy(state["align_masked_video.conv.bias"]))
        ln.weight.copy_(torch.from_numpy(state["align_masked_video.layer_norm.weight"]))
        ln.bias.copy_(torch.from_numpy(state["align_masked_video.layer_norm.bias"]))
        gate = torch.from_numpy(state["align_masked_video.gate"])
        out = torch.tanh(gate) * ln(conv(torch.from_numpy(video)).transpose(1, 2))
    return out.numpy()


def random_inputs(m, seed=0):
    rng = np.random.default_rng(seed)
    c = m.out_channels
    return dict(
        noisy_audio=rng.standard_normal((B, T, c)).astype(np.float32),
        audio_features=rng.standard_normal((B, T, c)).astype(np.float32),
        text_features=rng.standard_normal((B, S, m.text_dim)).astype(np.float32),
        text_mask=np.arange(S)[None] < np.array([[S], [2]]),
        time=np.array([0.15, 0.9], np.float32),
        audio_pad_mask=np.arange(T)[None] < np.array([[T], [9]]),
        video=rng.standard_normal((B, m.video_dim, T)).astype(np.float32),
        # spans: example 0 has "+" and "-", example 1 one "+" span; padded frames -> 1.
        anchor_ids=np.array([[0, 3, 1, 2], [0, 3, 1, 3]], np.int32),
        anchor_alignment=np.array(
            [
                [0, 0, 2, 2, 2, 0, 0, 3, 3, 0, 0, 0, 0, 0],
                [2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
            ],
            np.int32,
        ),
    )


def ours_from(m, state):
    return build_flow(m, flow_arrays_from_state_dict(state, m))


CASES = {
    "text_spans_video_padding": dict(text=True, spans=True, video=True),
    "text_no_video": dict(text=True, spans=False, video=False),
    "no_text_spans_video": dict(text=False, spans=True, video=True),
}


@pytest.fixture(scope="module")
def setup():
    m = small_model_config()
    state = random_release_state_dict(m, seed=1)
    return m, state, ours_from(m, state), mlx_reference(m, state)


@pytest.mark.parametrize("case", list(CASES))
def test_whole_flow_matches_mlx_audio_plus_torch_align(setup, case):
    m, state, ours, ref = setup
    opts = CASES[case]
    x = random_inputs(m, seed=hash(case) % 1000)
    text = x["text_features"] if opts["text"] else None
    text_mask = x["text_mask"] if opts["text"] else None
    ids = x["anchor_ids"] if opts["spans"] else None
    align = x["anchor_alignment"] if opts["spans"] else None
    if not opts["spans"]:  # the release's null anchors, which mlx-audio needs spelled out
        ref_ids = np.tile(np.array([[0, 3]], np.int32), (B, 1))
        ref_align = np.where(x["audio_pad_mask"], 0, 1).astype(np.int32)
    else:
        ref_ids, ref_align = ids, align
    video = x["video"] if opts["video"] else np.zeros((B, m.video_dim, T), np.float32)

    out = ours(
        jnp.asarray(x["noisy_audio"]),
        jnp.asarray(x["audio_features"]),
        None if text is None else jnp.asarray(text),
        None if text_mask is None else jnp.asarray(text_mask),
        jnp.asarray(x["time"]),
        jnp.asarray(video) if opts["video"] else None,
        None if ids is None else jnp.asarray(ids),
        None if align is None else jnp.asarray(align),
        jnp.asarray(x["audio_pad_mask"]),
    )
    align_term = mx.array(torch_align_term(state, video))
    original = ref.align_inputs
    ref.align_inputs = lambda *a, **k: original(*a, **k) + align_term
    try:
        expected = ref(
            mx.array(x["noisy_audio"]),
            mx.array(x["audio_features"]),
            None if text is None else mx.array(text),
            mx.array(x["time"]),
            text_mask=None if text_mask is None else mx.array(text_mask),
            anchor_ids=mx.array(ref_ids),
            anchor_alignment=mx.array(ref_align),
            audio_pad_mask=mx.array(x["audio_pad_mask"]),
        )
    finally:
        del ref.align_inputs
    expected = np.array(expected)
    assert rel_err(out, expected) <= RTOL, rel_err(out, expected)
    # The align term matters here (the gate is open), so leaving it out would fail.
    if opts["video"]:
        plain = np.array(
            original(
                mx.array(x["noisy_audio"]),
                mx.array(x["audio_features"]),
                mx.array(ref_ids),
                mx.array(ref_align),
            )
        )
        assert np.abs(np.array(align_term)).max() > 1e-2 and plain.shape == (B, T, m.dim)


def test_whole_flow_with_closed_video_gate_matches_mlx_audio_call(setup):
    m, state, _, _ = setup
    state = dict(state, **{"align_masked_video.gate": np.zeros(1, np.float32)})
    ours, ref = ours_from(m, state), mlx_reference(m, state)
    x = random_inputs(m, seed=5)
    out = ours(
        jnp.asarray(x["noisy_audio"]),
        jnp.asarray(x["audio_features"]),
        jnp.asarray(x["text_features"]),
        jnp.asarray(x["text_mask"]),
        jnp.asarray(x["time"]),
        anchor_ids=jnp.asarray(x["anchor_ids"]),
        anchor_alignment=jnp.asarray(x["anchor_alignment"]),
        audio_pad_mask=jnp.asarray(x["audio_pad_mask"]),
    )
    expected = np.array(
        ref(
            mx.array(x["noisy_audio"]),
            mx.array(x["audio_features"]),
            mx.array(x["text_features"]),
            mx.array(x["time"]),
            text_mask=mx.array(x["text_mask"]),
            anchor_ids=mx.array(x["anchor_ids"]),
            anchor_alignment=mx.array(x["anchor_alignment"]),
            audio_pad_mask=mx.array(x["audio_pad_mask"]),
        )
    )
    assert rel_err(out, expected) <= RTOL


def test_dit_alone_matches_mlx_audio(setup):
    m, _, ours, ref = setup
    rng = np.random.default_rng(7)
    h = rng.standard_normal((B, T, m.dim)).astype(np.float32)
    memory = rng.standard_normal((B, S, m.dim)).astype(np.float32)
    pad = np.arange(T)[None] < np.array([[11], [T]])
    mem_mask = np.arange(S)[None] < np.array([[3], [S]])
    time = np.array([0.4, 0.05], np.float32)
    out = ours.transformer(
        jnp.asarray(h),
        jnp.asarray(time),
        jnp.asarray(pad),
        jnp.asarray(memory),
        jnp.asarray(mem_mask),
    )
    expected = np.array(
        ref.transformer(
            mx.array(h),
            mx.array(time),
            padding_mask=mx.array(pad),
            memory=mx.array(memory),
            memory_padding_mask=mx.array(mem_mask),
        )
    )
    assert rel_err(out, expected) <= RTOL


def test_align_masked_video_matches_torch(setup):
    m, state, ours, _ = setup
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, m.dim)).astype(np.float32)
    video = rng.standard_normal((B, m.video_dim, T)).astype(np.float32)
    out = ours.align_masked_video(jnp.asarray(x), jnp.asarray(video))
    expected = x + torch_align_term(state, video)
    assert rel_err(np.asarray(out) - x, expected - x) <= RTOL
    # Zero video still adds tanh(gate) * LayerNorm(bias), as the release does.
    zero = np.zeros_like(video)
    out0 = ours.align_masked_video(jnp.asarray(x), jnp.asarray(zero))
    term0 = torch_align_term(state, zero)
    assert np.abs(term0).max() > 1e-2
    assert rel_err(np.asarray(out0) - x, term0) <= RTOL


def test_scanned_and_unscanned_layers_agree_on_the_same_weights(setup):
    m, state, ours, _ = setup
    scanned = ours_from(small_model_config(scan_layers=True), state)
    x = random_inputs(m, seed=11)
    args = (
        jnp.asarray(x["noisy_audio"]),
        jnp.asarray(x["audio_features"]),
        jnp.asarray(x["text_features"]),
        jnp.asarray(x["text_mask"]),
        jnp.asarray(x["time"]),
        jnp.asarray(x["video"]),
        jnp.asarray(x["anchor_ids"]),
        jnp.asarray(x["anchor_alignment"]),
        jnp.asarray(x["audio_pad_mask"]),
    )
    np.testing.assert_allclose(scanned(*args), ours(*args), rtol=1e-5, atol=1e-5)
