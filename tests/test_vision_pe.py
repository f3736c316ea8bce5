"""PE-Core tower: parity with timm's vit_pe_core model (subprocess in the vision venv) on
random weights in the release's layout, loaded through the vision_encoder part importer."""

from __future__ import annotations

import numpy as np
import pytest

from samaudio_jax.vision.factory import load_vision_part
from samaudio_jax.vision.features import FrameEncoder
from samaudio_jax.vision.pe import rope_angles
from tests.vision_reference import SMALL_PE, random_visual_state, run_timm, vision_python_or_skip

CFG = SMALL_PE


@pytest.fixture(scope="module")
def reference():
    python = vision_python_or_skip()
    state = random_visual_state(CFG, seed=3)
    rng = np.random.default_rng(4)
    frames = rng.uniform(-1, 1, (3, CFG.image_size, CFG.image_size, 3)).astype(np.float32)
    return state, frames, run_timm(python, CFG, state, frames)


@pytest.fixture(scope="module")
def encoder():
    """The reference's weights, jitted in chunks of 2 frames: 3 frames run as 2 + (1 + 1 pad)."""
    return FrameEncoder(load_vision_part(random_visual_state(CFG, seed=3), base=CFG).tower, 2)


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.mark.slow
def test_tower_matches_timm_pe_core_in_float32(reference):
    state, frames, timm_out = reference
    part = load_vision_part(state, base=CFG)
    assert part.tower.cfg == CFG
    raw = FrameEncoder(part.tower, batch_size=3, normalize=False)(frames)
    assert _rel(raw, timm_out["raw"]) <= 1e-4


def test_normalized_embeddings_in_padded_chunks_match_timm(reference, encoder):
    _, frames, timm_out = reference
    out = encoder(frames)
    assert _rel(out, timm_out["normalized"]) <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out), axis=-1), 1.0, rtol=1e-5)


def test_rope_is_live_a_transposed_frame_gives_another_embedding(encoder):
    frames = np.random.default_rng(4).uniform(-1, 1, (3, CFG.image_size, CFG.image_size, 3))
    a = np.asarray(encoder(frames))
    b = np.asarray(encoder(frames.transpose(0, 2, 1, 3)))
    assert np.max(np.abs(a - b)) > 1e-3


def test_rope_angles_leave_cls_unrotated_and_put_columns_first():
    angles = rope_angles(CFG)
    assert angles.shape == (1 + CFG.grid**2, CFG.head_dim // 2)
    assert np.all(angles[0] == 0)
    q = CFG.head_dim // 4
    # patch (row 0, col 1) is token 2: column position 2 in the first half, row 1 in the second
    np.testing.assert_allclose(angles[2, :q], 2 * angles[1, :q])
    np.testing.assert_allclose(angles[2, q:], angles[1, q:])


def test_sizes_come_from_the_arrays_and_head_counts_from_the_release_name():
    state = random_visual_state(CFG, seed=0)
    part = load_vision_part(state, {"vision_encoder": {"name": "PE-Core-L14-336"}})
    cfg = part.tower.cfg
    assert (cfg.image_size, cfg.patch_size, cfg.width, cfg.layers, cfg.output_dim) == (
        40,
        8,
        64,
        2,
        48,
    )
    assert (cfg.heads, cfg.pool_heads) == (16, 8)


def test_a_missing_or_misshapen_key_is_an_error_naming_it():
    state = random_visual_state(CFG, seed=0)
    broken = dict(state)
    del broken["model.visual.transformer.resblocks.1.mlp.c_fc.bias"]
    with pytest.raises(
        KeyError, match="vision_encoder.model.visual.transformer.resblocks.1.mlp.c_fc.bias"
    ):
        load_vision_part(broken, base=CFG)
    broken = dict(state)
    broken["model.visual.ln_post.weight"] = np.ones(7, np.float32)
    with pytest.raises(
        ValueError, match=r"model.visual.ln_post.weight' has shape \(7,\), expected \(64,\)"
    ):
        load_vision_part(broken, base=CFG)


def test_bfloat16_compute_stays_close_to_float32(encoder):
    import dataclasses

    frames = np.random.default_rng(4).uniform(-1, 1, (3, CFG.image_size, CFG.image_size, 3))
    bf16 = dataclasses.replace(CFG, dtype="bfloat16")
    low = FrameEncoder(load_vision_part(random_visual_state(CFG, seed=3), base=bf16).tower, 2)
    a, b = np.asarray(encoder(frames)), np.asarray(low(frames))
    assert b.dtype == np.float32
    cosine = np.sum(a * b, axis=-1)  # both unit norm
    assert np.all(cosine > 0.99) and np.max(np.abs(a - b)) > 0  # close, and really bf16
