"""vision_encoder.* through samaudio_jax.load / save: loaded into a PEVisionTower
(vision/factory.py), written back with the same key set, bytes and dtypes (the unused CLIP text
tower carried through unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import samaudio_jax as sa
from samaudio_jax.state_dict_io import numpy_to_torch as _numpy_to_torch
from samaudio_jax.state_dict_io import read_state_dict
from samaudio_jax.vision.factory import VisionEncoderPart
from samaudio_jax.vision.pe import PEVisionTower
from tests.release_fixtures import random_release_state_dict, small_model_config, write_release_dir
from tests.vision_reference import SMALL_PE as CFG
from tests.vision_reference import random_visual_state


def _text_tower(rng) -> dict[str, np.ndarray]:
    """Stand-ins for the CLIP text tower keys the release carries under vision_encoder.model."""
    return {
        "model.token_embedding.weight": rng.standard_normal((50, 16)).astype(np.float32),
        "model.positional_embedding": rng.standard_normal((8, 16)).astype(np.float32),
        "model.transformer.resblocks.0.attn.in_proj_weight": rng.standard_normal((48, 16)).astype(
            np.float32
        ),
        "model.ln_final.weight": rng.standard_normal(16).astype(np.float32),
        "model.text_projection": rng.standard_normal((16, 48)).astype(np.float32),
        "model.logit_scale": np.asarray(4.6, np.float32),
    }


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_vision_encoder_keys_round_trip_bit_exact(tmp_path, dtype):
    import ml_dtypes

    rng = np.random.default_rng(0)
    m = small_model_config(video_dim=CFG.output_dim)
    vision = {**random_visual_state(CFG, seed=1), **_text_tower(rng)}
    if dtype == "bfloat16":
        vision = {k: v.astype(ml_dtypes.bfloat16) for k, v in vision.items()}
    extra = {"vision_encoder." + k: v for k, v in vision.items()}
    src = write_release_dir(tmp_path / "src", m, random_release_state_dict(m))
    state = read_state_dict(src)[0]
    tensors = {k: _numpy_to_torch(v) for k, v in {**state, **extra}.items()}
    torch.save(tensors, src / "checkpoint.pt")

    sep = sa.load(src)
    part = sep.vision_part
    assert isinstance(part, VisionEncoderPart) and isinstance(part.tower, PEVisionTower)
    assert part.tower.cfg.layers == CFG.layers and part.tower.cfg.width == CFG.width
    assert set(part.carried) == {k for k in vision if not k.startswith("model.visual.")}
    assert sep.config.vision.checkpoint == str(src) and sep.config.vision.layers == CFG.layers

    sa.save(sep, tmp_path / "out")
    written = read_state_dict(tmp_path / "out")[0]
    original = {**state, **extra}
    assert set(written) == set(original)
    for key, value in extra.items():
        assert written[key].dtype == value.dtype, key
        assert written[key].shape == value.shape, key
        assert written[key].tobytes() == value.tobytes(), key


def test_an_unexpected_visual_key_is_an_error_naming_it(tmp_path):
    m = small_model_config(video_dim=CFG.output_dim)
    vision = random_visual_state(CFG, seed=1)
    vision["model.visual.rope.freqs"] = np.zeros(4, np.float32)
    extra = {"vision_encoder." + k: v for k, v in vision.items()}
    src = write_release_dir(tmp_path / "src", m, random_release_state_dict(m), extra=extra)
    with pytest.raises(KeyError, match="model.visual.rope.freqs"):
        sa.load(src)
