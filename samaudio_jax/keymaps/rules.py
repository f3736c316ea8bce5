"""KeyRule and Transform: the one vocabulary every key map is written in.

A KeyRule says: the tensor named `release` (torch layouts: Linear [out, in], Conv1d
[out, in, k]) is our parameter at `ours` (a "."-joined nnx path) after `transform`.
"{i}" in both names stands for a repeated block's index (expand() spells the blocks out).
`aliases` are other names the same tensor may carry in a source file (read only).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Transform:
    """to_ours(release array, our shape), to_release(our array), release_shape(our shape)."""

    name: str

    def release_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n = self.name
        if n == "identity":
            return tuple(shape)
        if n == "linear":  # ours [in, out]
            return (shape[1], shape[0])
        if n == "linear_split_out":  # ours [in, hd, H]: the output axis split in two
            return (math.prod(shape[1:]), shape[0])
        if n == "linear_split_in":  # ours [H, hd, out]: the input axis split in two
            return (shape[-1], math.prod(shape[:-1]))
        if n == "conv":  # ours [k, in, out]
            return (shape[2], shape[1], shape[0])
        if n == "conv1x1":  # ours [in, out]
            return (shape[1], shape[0], 1)
        if n == "patch":  # ours (p, p, 3, W); torch Conv2d [W, 3, p, p]
            return (shape[3], shape[2], shape[0], shape[1])
        if n == "probe":  # ours (1, W); release (1, 1, W)
            return (1, *shape)
        raise AssertionError(n)

    def to_ours(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        n = self.name
        if n == "identity":
            return a.reshape(shape)
        if n in ("linear", "linear_split_out", "linear_split_in"):
            return a.T.reshape(shape)
        if n == "conv":
            return a.transpose(2, 1, 0).reshape(shape)
        if n == "conv1x1":
            return a[:, :, 0].T.reshape(shape)
        if n == "patch":
            return a.transpose(2, 3, 1, 0).reshape(shape)
        if n == "probe":
            return a.reshape(shape)
        raise AssertionError(n)

    def to_release(self, a: np.ndarray) -> np.ndarray:
        n = self.name
        target = self.release_shape(a.shape)
        if n == "identity":
            return a
        if n in ("linear", "linear_split_out", "linear_split_in"):
            return a.reshape(target[1], target[0]).T
        if n == "conv":
            return a.transpose(2, 1, 0)
        if n == "conv1x1":
            return a.T[:, :, None]
        if n == "patch":
            return a.transpose(3, 2, 0, 1)
        if n == "probe":
            return a.reshape(target)
        raise AssertionError(n)


IDENTITY, LINEAR, CONV, CONV1X1 = (Transform(n) for n in ("identity", "linear", "conv", "conv1x1"))
SPLIT_OUT, SPLIT_IN = Transform("linear_split_out"), Transform("linear_split_in")
PATCH, PROBE = Transform("patch"), Transform("probe")


@dataclasses.dataclass(frozen=True)
class KeyRule:
    release: str  # e.g. "transformer.layers.{i}.attention.wq.weight"
    ours: str  # e.g. "transformer.layers.{i}.attention.wq"
    transform: Transform = IDENTITY
    aliases: tuple[str, ...] = ()

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.release


def expand(rules: list[KeyRule], num_layers: int = 0) -> list[KeyRule]:
    """The rules with every "{i}" spelled out for blocks 0 .. num_layers - 1."""
    out = []
    for r in rules:
        if r.per_layer:
            out += [
                KeyRule(
                    r.release.format(i=i),
                    r.ours.format(i=i),
                    r.transform,
                    tuple(a.format(i=i) for a in r.aliases),
                )
                for i in range(num_layers)
            ]
        else:
            out.append(r)
    return out


def to_ours(
    state: dict[str, np.ndarray],
    rules: list[KeyRule],
    shapes: dict[str, tuple[int, ...]],
    *,
    source: str = "state dict",
    prefix: str = "",
) -> dict[str, np.ndarray]:
    """{our path: array} for expanded `rules` from `state`; every rule's tensor must be there
    (KeyError naming prefix + key) with the shape `shapes[rule.ours]` implies (ValueError)."""
    out = {}
    for r in rules:
        key = next((k for k in (r.release, *r.aliases) if k in state), None)
        if key is None:
            raise KeyError(f"{source}: missing key {prefix + r.release!r}")
        arr = np.asarray(state[key])
        expected = r.transform.release_shape(tuple(shapes[r.ours]))
        if arr.shape != expected:
            raise ValueError(
                f"{source}: key {prefix + key!r} has shape {arr.shape}, expected {expected}"
            )
        out[r.ours] = r.transform.to_ours(arr, tuple(shapes[r.ours]))
    return out


def to_release(params: dict[str, np.ndarray], rules: list[KeyRule]) -> dict[str, np.ndarray]:
    """{release key: array} for expanded `rules` from {our path: array} (exact inverse)."""
    return {
        r.release: np.asarray(r.transform.to_release(np.asarray(params[r.ours])), order="C")
        for r in rules
    }
