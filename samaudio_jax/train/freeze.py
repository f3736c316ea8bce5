"""Which parameters train: freezing by path patterns, and the trainable view the optimizer sees.

A parameter's path is its key path in the train state's `params` tree joined with "/", e.g.
"flow/transformer/layers/3/attention/wq" or "text/layers/0/wq". With model.scan_layers the
blocks are one stacked module whose leaves carry a leading "layers" axis and have no index
in their path; patterns are still matched against the per-layer path WITH the index
("flow/transformer/layers/3/attention/wq"), once per layer, so the same patterns work with
and without scan.

Semantics (config.train):
- `trainable`: regexes, each matched with re.fullmatch. Empty means every parameter is a
  candidate; otherwise only parameters matching one of them are.
- `freeze`: regexes (re.fullmatch); a parameter matching one is frozen, whatever else says.
- With LoRA on (model.lora.rank > 0) the candidates are the adapters (and, with
  model.lora.train_norms, norm weights and biases) plus whatever `trainable` matches.
Every pattern must match at least one parameter, and something must be left to train: a
typo is an error naming the field and the pattern, not a silently frozen (or full) run.

Per leaf the selection is True (trains), False (frozen) or, for a stacked leaf whose layers
differ, the tuple of layer indices that train. `select(params)` is the trainable view: frozen
leaves absent, partially frozen stacked leaves cut to their trainable layers. The optimizer
state is built on that view only, so frozen parameters have no optimizer state at all (not
zeros, not placeholders); gradients are taken with respect to the view only, so no weight
gradient is formed for an unscanned frozen leaf. `combine(view, params)` writes the view
back; frozen leaves are the very same arrays, hence bit-identical after any number of steps.
Inside a scanned stack XLA still forms each layer's weight gradient (the scan's transpose
runs every layer) and the cut drops the frozen layers' part; their moments are not allocated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax
import optax

from samaudio_jax.config_checks import ConfigError  # a ValueError the CLIs print as one line

LORA_SUFFIX = "_lora"  # an adapter module is named "<kernel name>_lora" (model/lora.py)
NORM_OR_BIAS = re.compile(r".*(norm[^/]*/(weight|bias|scale)|/bias)")

Selection = Any  # pure-dict tree of True | False | tuple[int, ...]


def _paths(tree, logical, prefix=()):
    """Yields (path tuple, leaf, its logical spec) for a nested dict tree."""
    for k, v in tree.items():
        spec = logical.get(k) if isinstance(logical, dict) else None
        if isinstance(v, dict):
            yield from _paths(v, spec if spec is not None else {}, prefix + (str(k),))
        else:
            yield prefix + (str(k),), v, spec


def _layer_paths(path: tuple[str, ...], leaf, spec) -> list[str] | None:
    """Per-layer paths of a stacked leaf (leading logical axis "layers"), else None."""
    if spec is None or len(tuple(spec)) == 0 or tuple(spec)[0] != "layers":
        return None
    if "layers" not in path:
        return None
    at = path.index("layers") + 1
    return ["/".join(path[:at] + (str(i),) + path[at:]) for i in range(leaf.shape[0])]


def _compile(patterns: Sequence[str], field: str) -> list[tuple[str, re.Pattern]]:
    if isinstance(patterns, str):
        raise ConfigError(f"{field}: expected a tuple of regexes, got the string {patterns!r}")
    out = []
    for p in patterns:
        try:
            out.append((p, re.compile(p)))
        except re.error as e:
            raise ConfigError(f"{field}: {p!r} is not a valid regex ({e})") from None
    return out


def _is_adapter(path: str) -> bool:
    return any(part.endswith(LORA_SUFFIX) for part in path.split("/"))


def selection(params, logical, train_cfg, lora_cfg=None) -> Selection | None:
    """The per-leaf selection for `params` (shapes suffice), or None when every parameter
    trains (the plain full fine-tuning path, unchanged)."""
    trainable = _compile(tuple(train_cfg.get("trainable", ())), "config.train.trainable")
    freeze = _compile(tuple(train_cfg.get("freeze", ())), "config.train.freeze")
    lora_on = lora_cfg is not None and int(lora_cfg.get("rank", 0)) > 0
    train_norms = bool(lora_on and lora_cfg.get("train_norms", False))
    if not trainable and not freeze and not lora_on:
        return None
    used: set[tuple[str, str]] = set()

    def trains(path: str) -> bool:
        if lora_on:
            cand = _is_adapter(path) or (train_norms and bool(NORM_OR_BIAS.fullmatch(path)))
        else:
            cand = not trainable
        for p, rx in trainable:
            if rx.fullmatch(path):
                used.add(("trainable", p))
                cand = True
        for p, rx in freeze:
            if rx.fullmatch(path):
                used.add(("freeze", p))
                cand = False
        return cand

    out: dict = {}
    any_trains = False
    for path, leaf, spec in _paths(params, logical):
        per_layer = _layer_paths(path, leaf, spec)
        if per_layer is None:
            value: Any = trains("/".join(path))
        else:
            flags = [trains(p) for p in per_layer]
            value = all(flags) or (
                tuple(i for i, f in enumerate(flags) if f) if any(flags) else False
            )
        any_trains = any_trains or value is True or isinstance(value, tuple)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    for field, pats in (("trainable", trainable), ("freeze", freeze)):
        for p, _ in pats:
            if (field, p) not in used:
                raise ConfigError(f"config.train.{field}: {p!r} matches no parameter path")
    if not any_trains:
        raise ConfigError(
            "config.train.freeze / config.train.trainable: no parameter is left to train"
        )
    return out


def _items(tree, sel):
    """(key, subtree, subselection) for the keys of the nested dict `tree`."""
    for k, v in tree.items():
        yield k, v, sel[str(k)]


def _cut(x, idx: tuple[int, ...]):
    if idx == tuple(range(idx[0], idx[-1] + 1)):  # contiguous: a slice, no gather
        return x[idx[0] : idx[-1] + 1]
    return x[list(idx)]


def select(params, sel: Selection | None, cut: bool = True):
    """The trainable view of `params` (a tree of the same kind, frozen leaves absent).
    cut=False keeps partially frozen stacked leaves whole (for trees of logical specs)."""
    if sel is None:
        return params
    out = {}
    for k, v, s in _items(params, sel):
        if isinstance(v, dict):
            sub = select(v, s, cut)
            if sub:
                out[k] = sub
        elif s is True:
            out[k] = v
        elif isinstance(s, tuple):
            out[k] = _cut(v, s) if cut else v
    return out


def combine(view, params, sel: Selection | None):
    """`params` with the trainable view written back (frozen leaves are `params`' own)."""
    if sel is None:
        return view
    out = {}
    for k, v, s in _items(params, sel):
        if isinstance(v, dict):
            out[k] = combine(view.get(k, {}), v, s)
        elif s is True:
            out[k] = view[k]
        elif isinstance(s, tuple):
            if s == tuple(range(s[0], s[-1] + 1)):
                out[k] = jax.lax.dynamic_update_slice_in_dim(v, view[k].astype(v.dtype), s[0], 0)
            else:
                out[k] = v.at[list(s)].set(view[k].astype(v.dtype))
        else:
            out[k] = v
    return out


def restrict(tx: optax.GradientTransformation, sel: Selection | None):
    """`tx` whose init takes the full params tree and builds state for the trainable view
    only; update works on the view (what the train step passes: grads of the view)."""
    if sel is None:
        return tx
    return optax.GradientTransformation(lambda params: tx.init(select(params, sel)), tx.update)


def count(sel: Selection | None, params) -> tuple[int, int]:
    """(trainable elements, all elements) of `params` under `sel`."""
    total = sum(int(x.size) for x in jax.tree.leaves(params))
    view = jax.eval_shape(lambda p: select(p, sel), params)  # arrays or ShapeDtypeStructs
    return sum(int(x.size) for x in jax.tree.leaves(view)), total
