"""The PE-Core vision tower: the release's `vision_encoder.model.visual.*` keys <-> our
PEVisionTower's parameter paths.

Release keys here are relative to the `vision_encoder.` part prefix ("model.visual.conv1.weight").
Layouts: conv1 [W, 3, p, p] <-> ours (p, p, 3, W); Linear and MultiheadAttention in_proj
[out, in] <-> ours [in, out]; attn_pool.probe (1, 1, W) <-> ours (1, W); `proj` is already
[in, out] (used as x @ proj). The release's Rope2D holds no parameters (no RoPE keys).
"""

from __future__ import annotations

import numpy as np

from samaudio_jax.keymaps.rules import IDENTITY, LINEAR, PATCH, PROBE, KeyRule

VISUAL = "model.visual."


def _norm(release: str, ours: str) -> list[KeyRule]:
    return [KeyRule(f"{release}.{p}", f"{ours}.{p}") for p in ("weight", "bias")]


def _dense(release: str, ours: str) -> list[KeyRule]:
    return [
        KeyRule(f"{release}.weight", f"{ours}.kernel", LINEAR),
        KeyRule(f"{release}.bias", f"{ours}.bias", IDENTITY),
    ]


def _mlp(release: str, ours: str) -> list[KeyRule]:
    return _dense(f"{release}.c_fc", f"{ours}.c_fc") + _dense(f"{release}.c_proj", f"{ours}.c_proj")


def _mha(release: str, ours: str) -> list[KeyRule]:
    return [
        KeyRule(f"{release}.in_proj_weight", f"{ours}.in_proj.kernel", LINEAR),
        KeyRule(f"{release}.in_proj_bias", f"{ours}.in_proj.bias", IDENTITY),
        *_dense(f"{release}.out_proj", f"{ours}.out_proj"),
    ]


def vision_rules(layers: int) -> list[KeyRule]:
    """One rule per tower parameter (release key relative to `vision_encoder.`)."""
    v = VISUAL
    rules = [
        KeyRule(f"{v}conv1.weight", "patch_embed", PATCH),
        KeyRule(f"{v}class_embedding", "class_embedding"),
        KeyRule(f"{v}positional_embedding", "positional_embedding"),
        KeyRule(f"{v}proj", "proj"),
        KeyRule(f"{v}attn_pool.probe", "attn_pool.probe", PROBE),
        *_norm(f"{v}ln_pre", "ln_pre"),
        *_norm(f"{v}ln_post", "ln_post"),
        *_mha(f"{v}attn_pool.attn", "attn_pool"),
        *_norm(f"{v}attn_pool.layernorm", "attn_pool.layernorm"),
        *_mlp(f"{v}attn_pool.mlp", "attn_pool.mlp"),
    ]
    for i in range(layers):
        src, dst = f"{v}transformer.resblocks.{i}", f"blocks.{i}"
        rules += _norm(f"{src}.ln_1", f"{dst}.ln_1")
        rules += _norm(f"{src}.ln_2", f"{dst}.ln_2")
        rules += _mha(f"{src}.attn", f"{dst}.attn")
        rules += _mlp(f"{src}.mlp", f"{dst}.mlp")
    return rules


def count_layers(state: dict[str, np.ndarray]) -> int:
    """Number of resblocks present under model.visual.transformer.resblocks.{i}."""
    prefix = f"{VISUAL}transformer.resblocks."
    indices = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0
