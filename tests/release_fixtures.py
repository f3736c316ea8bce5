"""Random flow-network state dicts in the release's layout, and release directories holding them."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import torch

from samaudio_jax.checkpoint import release_config_from_model
from samaudio_jax.config_schema import default_config
from samaudio_jax.keymaps.flow import flow_rules
from samaudio_jax.model.factory import abstract_flow_params


def tiny_model_config(**overrides):
    """D=32, 2 layers, 4 heads (head_dim 8), 2L=16, small adapters: fast on a CPU."""
    m = default_config().model
    m.dim, m.num_layers, m.num_heads = 32, 2, 4
    m.latent_dim, m.out_channels, m.in_channels = 8, 16, 48
    m.text_dim, m.video_dim = 24, 20
    m.anchor_embedding_dim = 8
    m.frequency_embedding_dim = 16
    m.dropout = 0.0
    for k, v in overrides.items():
        m[k] = v
    return m


def small_model_config(**overrides):
    """tiny_model_config with D=64 (head_dim 16) and max_positions 8000, so that RoPE's
    theta = 2 * max_positions = 16000, not the 10000 floor."""
    return tiny_model_config(**{"dim": 64, "max_positions": 8000, **overrides})


def random_release_state_dict(m, seed: int = 0) -> dict[str, np.ndarray]:
    """Every flow key with its release shape; norms near 1, gates and tables non-trivial."""
    rng = np.random.default_rng(seed)
    unscanned = m.copy_and_resolve_references()
    unscanned.scan_layers = False
    targets = abstract_flow_params(unscanned)
    state = {}
    for rule in flow_rules(unscanned):
        key = rule.release
        shape = rule.transform.release_shape(targets[rule.ours].shape)
        if key.endswith("norm.weight") or "groupnorm.weight" in key or "layer_norm.weight" in key:
            a = 1.0 + 0.2 * rng.standard_normal(shape)
        elif key.endswith("gate"):
            a = rng.uniform(0.3, 0.9, shape)
        elif len(shape) == 1:
            a = 0.1 * rng.standard_normal(shape)
        elif "scale_shift_table" in key:
            a = rng.standard_normal(shape) / math.sqrt(shape[-1])
        elif key == "embed_anchors.embed.weight":
            a = rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        state[key] = a.astype(np.float32)
    return state


def write_release_dir(
    directory,
    m,
    state: dict[str, np.ndarray],
    extra: dict[str, np.ndarray] | None = None,
    config_overrides: dict | None = None,
) -> pathlib.Path:
    """config.json + checkpoint.pt (torch.save of the state dict) under `directory`."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = release_config_from_model(m)
    for section, values in (config_overrides or {}).items():
        if isinstance(values, dict) and section in config:
            config[section].update(values)
        else:
            config[section] = values
    (directory / "config.json").write_text(json.dumps(config))
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in {**state, **(extra or {})}.items()}
    torch.save(tensors, directory / "checkpoint.pt")
    return directory


def numpy_init_flow(m, seed: int = 0):
    """A SAMAudioFlow for config.model `m` with random weights drawn by numpy (no jax random
    init to compile: fast on a busy CPU). Norms near 1, gates open, tables non-trivial."""
    from samaudio_jax.model.factory import build_flow

    rng = np.random.default_rng(seed)
    arrays = {}
    for path, shape in sorted((k, v.shape) for k, v in abstract_flow_params(m).items()):
        leaf = path.rsplit(".", 1)[-1]
        if "norm" in path and leaf == "weight":
            a = 1.0 + 0.2 * rng.standard_normal(shape)
        elif leaf == "gate":
            a = rng.uniform(0.3, 0.9, shape)
        elif len(shape) == 1 or (leaf == "bias"):
            a = 0.1 * rng.standard_normal(shape)
        elif "scale_shift_table" in path:
            a = rng.standard_normal(shape) / math.sqrt(shape[-1])
        else:
            fan_in = shape[-2] if leaf != "wo" else shape[-3] * shape[-2]
            if leaf in ("wq", "wk", "wv"):
                fan_in = shape[-3]
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        arrays[path] = a.astype(np.float32)
    return build_flow(m, arrays, seed=seed)


# A DACVAE small enough for a CPU test (hop 8, latent 8), in config.codec's field names.
SMALL_DACVAE = dict(
    encoder_dim=4,
    encoder_rates=[2, 4],
    encoder_hidden_dim=16,
    latent_dim=8,
    decoder_dim=48,
    decoder_rates=[4, 2],
    wm_rates=[2, 2],
    wm_msg_dim=8,
    hop_length=8,
    sample_rate=8000,
)


def full_model_config(**overrides):
    """tiny_model_config sized for the full fixture: latent 8 (the small DACVAE's), text_dim 32
    (the test T5's d_model), video_dim 48 (the small PE-Core's output)."""
    return tiny_model_config(**{"text_dim": 32, "video_dim": 48, **overrides})


def random_codec_state(seed: int = 0) -> dict[str, np.ndarray]:
    """Every `audio_codec.*` tensor of the small DACVAE, random (no two equal)."""
    from samaudio_jax.codec.factory import build_codec, export_codec_state

    c = default_config().codec
    for k, v in SMALL_DACVAE.items():
        c[k] = tuple(v) if isinstance(v, list) else v
    rng = np.random.default_rng(seed)
    codec = build_codec(c, random_ok=True)
    return {
        "audio_codec." + k: (v + 0.05 * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in export_codec_state(codec).items()
    }


def write_full_release_dir(directory, seed: int = 0):
    """A release-layout directory holding every part with random weights: the flow network,
    a small DACVAE (audio_codec.*), a small PE-Core tower plus a carried CLIP text-tower key
    (vision_encoder.*) and a carried span predictor in bfloat16. config.json is the release's
    plus the project's extension naming the small codec's sizes (the release's config.json
    has no field for them). Returns (directory, config.model)."""
    import ml_dtypes

    from tests.vision_reference import SMALL_PE, random_visual_state

    m = full_model_config()
    rng = np.random.default_rng(seed + 7)
    extra = random_codec_state(seed)
    vision = random_visual_state(SMALL_PE, seed=seed + 1)
    vision["model.logit_scale"] = np.asarray(4.6, np.float32)
    extra.update({"vision_encoder." + k: v for k, v in vision.items()})
    span = rng.standard_normal((6, 4)).astype(ml_dtypes.bfloat16)
    extra["span_predictor.head.weight"] = span
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = release_config_from_model(m)
    config["vision_encoder"] = {"name": "PE-Core-tiny-test"}
    config["samaudio_jax"] = {"config": {"codec": SMALL_DACVAE}}
    (directory / "config.json").write_text(json.dumps(config))
    from samaudio_jax.state_dict_io import write_state_dict

    state = {**random_release_state_dict(m, seed), **extra}
    write_state_dict(state, directory / "checkpoint.pt")
    return directory, m
