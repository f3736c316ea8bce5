"""The declarative map between the release's `vision_encoder.model.visual.*` keys and
PEVisionTower's parameters.

Release keys here are relative to the `vision_encoder.` part prefix ("model.visual.conv1.weight").
Layouts: conv1 [W, 3, p, p] <-> ours (p, p, 3, W); Linear and MultiheadAttention in_proj
[out, in] <-> ours [in, out]; attn_pool.probe (1, 1, W) <-> ours (1, W); `proj` is already
[in, out] (used as x @ proj). Every transform is a transpose or reshape, so a round trip is
bit-exact. The release's Rope2D holds no parameters, so there are no RoPE keys.
"""

from __future__ import annotations

import dataclasses

import numpy as np

VISUAL = "model.visual."


@dataclasses.dataclass(frozen=True)
class Transform:
    """to_ours(release array), to_release(our array), release_shape(our shape)."""

    name: str

    def release_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.name == "identity":
            return tuple(shape)
        if self.name == "linear":
            return (shape[1], shape[0])
        if self.name == "patch":  # ours (p, p, 3, W)
            return (shape[3], shape[2], shape[0], shape[1])
        if self.name == "probe":  # ours (1, W)
            return (1, *shape)
        raise AssertionError(self.name)

    def to_ours(self, a: np.ndarray) -> np.ndarray:
        if self.name == "identity":
            return a
        if self.name == "linear":
            return a.T
        if self.name == "patch":
            return a.transpose(2, 3, 1, 0)
        if self.name == "probe":
            return a.reshape(a.shape[1:])
        raise AssertionError(self.name)

    def to_release(self, a: np.ndarray) -> np.ndarray:
        if self.name == "identity":
            return a
        if self.name == "linear":
            return a.T
        if self.name == "patch":
            return a.transpose(3, 2, 0, 1)
        if self.name == "probe":
            return a.reshape(1, *a.shape)
        raise AssertionError(self.name)


IDENTITY, LINEAR, PATCH, PROBE = (Transform(n) for n in ("identity", "linear", "patch", "probe"))


def _norm(release: str, ours: str) -> list[tuple[str, str, Transform]]:
    return [(f"{release}.{p}", f"{ours}.{p}", IDENTITY) for p in ("weight", "bias")]


def _dense(release: str, ours: str) -> list[tuple[str, str, Transform]]:
    return [
        (f"{release}.weight", f"{ours}.kernel", LINEAR),
        (f"{release}.bias", f"{ours}.bias", IDENTITY),
    ]


def _mlp(release: str, ours: str) -> list[tuple[str, str, Transform]]:
    return _dense(f"{release}.c_fc", f"{ours}.c_fc") + _dense(f"{release}.c_proj", f"{ours}.c_proj")


def _mha(release: str, ours: str) -> list[tuple[str, str, Transform]]:
    return [
        (f"{release}.in_proj_weight", f"{ours}.in_proj.kernel", LINEAR),
        (f"{release}.in_proj_bias", f"{ours}.in_proj.bias", IDENTITY),
        *_dense(f"{release}.out_proj", f"{ours}.out_proj"),
    ]


def vision_key_rules(layers: int) -> list[tuple[str, str, Transform]]:
    """(release key relative to `vision_encoder.`, our parameter path, transform) for a tower
    of `layers` blocks."""
    v = VISUAL
    rules = [
        (f"{v}conv1.weight", "patch_embed", PATCH),
        (f"{v}class_embedding", "class_embedding", IDENTITY),
        (f"{v}positional_embedding", "positional_embedding", IDENTITY),
        (f"{v}proj", "proj", IDENTITY),
        (f"{v}attn_pool.probe", "attn_pool.probe", PROBE),
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
