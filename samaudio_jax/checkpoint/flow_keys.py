"""The declarative map between the release's state-dict keys and SAMAudioFlow's parameters.

Each rule is (release key, our parameter path, transform); "{i}" stands for the block index.
With scan_layers the blocks' parameters are stacked on a leading axis and the path drops
the index ("transformer.layers.attention.wq"). Transforms take the release array (torch
layouts: Linear [out, in], Conv1d [out, in, k]) to ours and back, exactly (reshapes and
transposes only).
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
import numpy as np


@dataclasses.dataclass(frozen=True)
class Transform:
    """to_ours(release array, our shape) and to_release(our array); release_shape(our shape)."""

    name: str

    def to_ours(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.name == "identity":
            return a.reshape(shape)
        if self.name in ("linear", "linear_split_out", "linear_split_in"):
            return a.T.reshape(shape)
        if self.name == "conv":
            return a.transpose(2, 1, 0).reshape(shape)
        if self.name == "conv1x1":
            return a[:, :, 0].T.reshape(shape)
        raise AssertionError(self.name)

    def release_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.name == "identity":
            return tuple(shape)
        if self.name == "linear":
            return (shape[1], shape[0])
        if self.name == "linear_split_out":  # ours [in, hd, H]
            return (math.prod(shape[1:]), shape[0])
        if self.name == "linear_split_in":  # ours [H, hd, out]
            return (shape[-1], math.prod(shape[:-1]))
        if self.name == "conv":  # ours [k, in, out]
            return (shape[2], shape[1], shape[0])
        if self.name == "conv1x1":  # ours [in, out]
            return (shape[1], shape[0], 1)
        raise AssertionError(self.name)

    def to_release(self, a: np.ndarray) -> np.ndarray:
        target = self.release_shape(a.shape)
        if self.name == "identity":
            return a
        if self.name in ("linear", "linear_split_out", "linear_split_in"):
            return a.reshape(target[1], target[0]).T
        if self.name == "conv":
            return a.transpose(2, 1, 0)
        if self.name == "conv1x1":
            return a.T[:, :, None]
        raise AssertionError(self.name)


IDENTITY, LINEAR, CONV, CONV1X1 = (Transform(n) for n in ("identity", "linear", "conv", "conv1x1"))
SPLIT_OUT, SPLIT_IN = Transform("linear_split_out"), Transform("linear_split_in")


@dataclasses.dataclass(frozen=True)
class KeyRule:
    release: str  # e.g. "transformer.layers.{i}.attention.wq.weight"
    ours: str  # e.g. "transformer.layers.{i}.attention.wq"
    transform: Transform

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.release


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


def expand_layers(rules: list[KeyRule], num_layers: int) -> list[tuple[str, str, Transform]]:
    """(release key, unscanned path, transform) for every parameter, blocks spelled out."""
    out = []
    for rule in rules:
        if rule.per_layer:
            out += [
                (rule.release.format(i=i), rule.ours.format(i=i), rule.transform)
                for i in range(num_layers)
            ]
        else:
            out.append((rule.release, rule.ours, rule.transform))
    return out
