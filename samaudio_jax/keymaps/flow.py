"""The flow network (SAMAudioFlow): the release's state-dict keys <-> our parameter paths.

Paths are unscanned ("transformer.layers.{i}.attention.wq"); with model.scan_layers the
blocks' parameters are stacked on a leading axis and the path drops the index
(model/factory.py does the stacking).
"""

from __future__ import annotations

import ml_collections

from samaudio_jax.keymaps.rules import (
    CONV,
    CONV1X1,
    IDENTITY,
    LINEAR,
    SPLIT_IN,
    SPLIT_OUT,
    KeyRule,
    expand,
)


def _attention_rules(prefix: str, ours: str, qk_norm: bool) -> list[KeyRule]:
    rules = [KeyRule(f"{prefix}.{w}.weight", f"{ours}.{w}", SPLIT_OUT) for w in ("wq", "wk", "wv")]
    rules.append(KeyRule(f"{prefix}.wo.weight", f"{ours}.wo", SPLIT_IN))
    if qk_norm:
        rules += [
            KeyRule(f"{prefix}.{n}.weight", f"{ours}.{n}.weight", IDENTITY)
            for n in ("q_norm", "k_norm")
        ]
    return rules


def _swiglu_rules(prefix: str, ours: str) -> list[KeyRule]:
    return [
        KeyRule(f"{prefix}.{w}.weight", f"{ours}.{w}.kernel", LINEAR) for w in ("w1", "w2", "w3")
    ]


def flow_key_rules(cfg: ml_collections.ConfigDict) -> list[KeyRule]:
    """All rules for a model built from config.model `cfg` (release layout, unscanned paths)."""
    r = [
        KeyRule("proj.weight", "proj.kernel", LINEAR),
        KeyRule("proj.bias", "proj.bias", IDENTITY),
        KeyRule("align_masked_video.conv.weight", "align_masked_video.conv.kernel", CONV1X1),
        KeyRule("align_masked_video.conv.bias", "align_masked_video.conv.bias", IDENTITY),
        KeyRule("align_masked_video.gate", "align_masked_video.gate", IDENTITY),
        KeyRule("embed_anchors.embed.weight", "embed_anchors.embed", IDENTITY),
        KeyRule("embed_anchors.proj.weight", "embed_anchors.proj.kernel", LINEAR),
        KeyRule("embed_anchors.gate", "embed_anchors.gate", IDENTITY),
        KeyRule("memory_proj.weight", "memory_proj.kernel", LINEAR),
        KeyRule("memory_proj.bias", "memory_proj.bias", IDENTITY),
    ]
    r += [
        KeyRule(
            f"align_masked_video.layer_norm.{p}", f"align_masked_video.layer_norm.{p}", IDENTITY
        )
        for p in ("weight", "bias")
    ]
    t = "transformer"
    for j in (1, 2):
        src, dst = f"{t}.x_embedder.block.block{j}", f"{t}.x_embedder.block{j}"
        r += [
            KeyRule(f"{src}.groupnorm.weight", f"{dst}.groupnorm.weight", IDENTITY),
            KeyRule(f"{src}.groupnorm.bias", f"{dst}.groupnorm.bias", IDENTITY),
            KeyRule(f"{src}.project.weight", f"{dst}.project.kernel", CONV),
            KeyRule(f"{src}.project.bias", f"{dst}.project.bias", IDENTITY),
        ]
    r += _swiglu_rules(f"{t}.t_embedder.projection", f"{t}.t_embedder.projection")
    r += _swiglu_rules(f"{t}.y_embedder.projection", f"{t}.y_embedder.projection")
    if cfg.context_norm:
        r.append(KeyRule(f"{t}.y_embedder.norm.weight", f"{t}.y_embedder.norm.weight", IDENTITY))
    r.append(KeyRule(f"{t}.t_block.weight", f"{t}.t_block.kernel", LINEAR))
    if cfg.t_block_bias:
        r.append(KeyRule(f"{t}.t_block.bias", f"{t}.t_block.bias", IDENTITY))
    r += [
        KeyRule(f"{t}.norm.weight", f"{t}.norm.weight", IDENTITY),
        KeyRule(f"{t}.output.weight", f"{t}.output.kernel", LINEAR),
        KeyRule(
            f"{t}.final_layer_scale_shift_table", f"{t}.final_layer_scale_shift_table", IDENTITY
        ),
    ]
    layer = f"{t}.layers.{{i}}"
    r += _attention_rules(f"{layer}.attention", f"{layer}.attention", cfg.qk_norm)
    r += _attention_rules(f"{layer}.cross_attention", f"{layer}.cross_attention", cfg.qk_norm)
    r += _swiglu_rules(f"{layer}.feed_forward", f"{layer}.feed_forward")
    r += [
        KeyRule(f"{layer}.attention_norm.weight", f"{layer}.attention_norm.weight", IDENTITY),
        KeyRule(f"{layer}.ffn_norm.weight", f"{layer}.ffn_norm.weight", IDENTITY),
        KeyRule(f"{layer}.scale_shift_table", f"{layer}.scale_shift_table", IDENTITY),
    ]
    return r


def flow_rules(cfg: ml_collections.ConfigDict) -> list[KeyRule]:
    """flow_key_rules(cfg) with the blocks spelled out (one rule per release tensor)."""
    return expand(flow_key_rules(cfg), int(cfg.num_layers))
