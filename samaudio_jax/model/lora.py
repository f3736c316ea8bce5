"""LoRA adapters on the DiT blocks' projections; folding them into plain weights; adapter files.

Design (NNX-native rather than qwix): the projections are raw einsums over split kernels
(q, k, v stored [D, hd, H], the output [H, hd, D]) plus plain Dense kernels in the SwiGLU, so
the adapter is simplest as a module beside the kernel it adapts, called in the layer's own
einsum path: for a kernel W with input dims I and output dims O, A has shape I + (r,), B has
(r,) + O, and the layer adds (alpha / r) * (x . A) . B to x . W. A starts like a torch Linear
(uniform +-1/sqrt(fan_in)), B at zero, so an adapted model starts equal to its base. The
adapter of parameter `wq` is the module `wq_lora` (of a Dense's `kernel`, `kernel_lora`),
holding params `a` and `b`; freezing (train/freeze.py) recognises adapters by that suffix.
Adapters are float32 whatever model.param_dtype says (they are small and are what trains),
so a LoRA run may keep the frozen base in bfloat16 (model.param_dtype) to halve its memory.
Logical axes: A takes W's input axes, B W's output axes, the rank axis is None (replicated),
so config.mesh.rules shard adapters like their kernels with no new rule; with scan_layers the
adapters are stacked on the "layers" axis like every block parameter. (qwix intercepts
library layers and einsum calls behind the modules' back and would still need its own merge
and naming; explicit modules keep the parameter paths, shardings and merge in plain view.)

`merge_lora(model)` folds every adapter into its kernel (W + scale * A B) in place and removes
the adapters, leaving exactly the plain model; `merge_lora_params` does the same on a pure
dict of parameters. `save_adapters` / `load_adapters` write and read the adapters alone:
adapters.safetensors (parameter path -> tensor) and adapter_config.json (the lora config).
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.config_checks import ConfigError  # a ValueError the CLIs print as one line

SUFFIX = "_lora"
TENSORS_FILE = "adapters.safetensors"
CONFIG_FILE = "adapter_config.json"
ATTENTION_NAMES = ("wq", "wk", "wv", "wo")
SWIGLU_NAMES = ("w1", "w2", "w3")
SUBLAYERS = {
    "attention": ATTENTION_NAMES,
    "cross_attention": ATTENTION_NAMES,
    "feed_forward": SWIGLU_NAMES,
}


@dataclasses.dataclass(frozen=True)
class LoRASpec:
    """Rank, alpha and which projections of one sublayer get adapters."""

    rank: int
    alpha: float
    names: frozenset[str]

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def wants(self, name: str) -> bool:
        return name in self.names


def spec_for(lora_cfg, sublayer: str) -> LoRASpec | None:
    """The adapters config.model.lora asks for in `sublayer` (attention, cross_attention,
    feed_forward), or None; bad values are errors naming the field."""
    if lora_cfg is None or int(lora_cfg.get("rank", 0)) == 0:
        return None
    rank, alpha = int(lora_cfg.rank), float(lora_cfg.alpha)
    if rank < 0:
        raise ConfigError(f"config.model.lora.rank: expected >= 0 (0 = off), got {rank}")
    if not alpha > 0:
        raise ConfigError(f"config.model.lora.alpha: expected > 0, got {alpha}")
    names = set()
    for target in tuple(lora_cfg.targets):
        sub, _, proj = str(target).partition(".")
        if sub not in SUBLAYERS or proj not in SUBLAYERS[sub]:
            known = [f"{s}.{p}" for s, ps in SUBLAYERS.items() for p in ps]
            raise ConfigError(
                f"config.model.lora.targets: unknown {target!r}; expected some of {known}"
            )
        if sub == sublayer:
            names.add(proj)
    return LoRASpec(rank, alpha, frozenset(names)) if names else None


class LoRA(nnx.Module):
    """delta(x) = scale * (x . A) . B, contracting x's last len(in_shape) dims."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        spec: LoRASpec,
        *,
        in_axes: tuple[str | None, ...],
        out_axes: tuple[str | None, ...],
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        bound = 1.0 / math.sqrt(math.prod(in_shape))
        a_shape = tuple(in_shape) + (spec.rank,)
        a = jax.random.uniform(rngs.params(), a_shape, param_dtype, -bound, bound)
        self.a = nnx.Param(a, out_sharding=tuple(in_axes) + (None,))
        b = jnp.zeros((spec.rank,) + tuple(out_shape), param_dtype)
        self.b = nnx.Param(b, out_sharding=(None,) + tuple(out_axes))
        self.scale = float(spec.scale)
        self.n_in = len(in_shape)

    def __call__(self, x: jax.Array, dtype) -> jax.Array:
        h = jnp.tensordot(x.astype(dtype), self.a[...].astype(dtype), axes=self.n_in)
        return (self.scale * jnp.tensordot(h, self.b[...].astype(dtype), axes=1)).astype(dtype)


def fresh_adapter_array(path: str, shape, dtype, *, stacked: bool, seed: int = 0) -> np.ndarray:
    """One adapter leaf as LoRA.__init__ draws it, for a network built from weights that hold
    no adapters (a release, a full export): B zero, so the adapted network starts as exactly
    the source; A uniform in +-1/sqrt(fan-in), seeded by `seed` and the parameter path."""
    if path.endswith(".b"):
        return np.zeros(shape, dtype)
    fan_in = math.prod(shape[1:-1] if stacked else shape[:-1])
    bound = 1.0 / math.sqrt(fan_in)
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def fold(w, a, b, scale: float):
    """W + scale * A B (a stacked leading layer axis on all three is kept), in W's dtype."""
    stacked = w.ndim == a.ndim + b.ndim - 3
    prod = jax.vmap(lambda a, b: jnp.tensordot(a, b, axes=1)) if stacked else None
    f32 = jnp.float32
    delta = (
        prod(a.astype(f32), b.astype(f32))
        if stacked
        else jnp.tensordot(a.astype(f32), b.astype(f32), axes=1)
    )
    return (w.astype(f32) + scale * delta).astype(w.dtype)


def merge_lora(model: nnx.Module) -> nnx.Module:
    """A copy of `model` with every adapter folded into its kernel and removed: the plain
    architecture (what the release layout and rank 0 describe). `model` is left as it was."""
    model = nnx.clone(model)
    for _, module in list(nnx.iter_graph(model)):
        if not isinstance(module, nnx.Module):
            continue
        for name in [n for n in vars(module) if n.endswith(SUFFIX)]:
            adapter = getattr(module, name)
            if not isinstance(adapter, LoRA):
                continue
            kernel = getattr(module, name[: -len(SUFFIX)])
            kernel[...] = fold(kernel[...], adapter.a[...], adapter.b[...], adapter.scale)
            setattr(module, name, None)
    return model


def merge_lora_params(tree: dict, lora_cfg) -> dict:
    """merge_lora on a pure dict of parameters (e.g. a train state's params["flow"])."""
    scale = float(lora_cfg.alpha) / int(lora_cfg.rank)
    out = {}
    for k, v in tree.items():
        name = str(k)
        if name.endswith(SUFFIX) and isinstance(v, dict) and set(v) == {"a", "b"}:
            continue
        if isinstance(v, dict):
            out[k] = merge_lora_params(v, lora_cfg)
            continue
        adapter = tree.get(name + SUFFIX)
        out[k] = v if adapter is None else fold(v, adapter["a"], adapter["b"], scale)
    return out


def without_lora(config):
    """A copy of the experiment config with LoRA off (what a merged model is)."""
    config = config.copy_and_resolve_references()
    config.model.lora.rank = 0
    return config


def merged_separator(separator):
    """A copy of a Separator-like dataclass (config, model, ...) with its flow network's
    adapters merged and its config saying LoRA is off (what export writes)."""
    return dataclasses.replace(
        separator, model=merge_lora(separator.model), config=without_lora(separator.config)
    )


def adapter_arrays(model: nnx.Module) -> dict[str, np.ndarray]:
    """{parameter path ("transformer/layers/0/attention/wq_lora/a"): array} of the adapters."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    out = {}
    for path, var in flat:
        keys = [str(p) for p in path]
        if any(k.endswith(SUFFIX) for k in keys):
            out["/".join(keys)] = np.asarray(jax.device_get(var.get_value()))
    return out


def _lora_json(lora_cfg) -> dict:
    return {
        "rank": int(lora_cfg.rank),
        "alpha": float(lora_cfg.alpha),
        "targets": list(lora_cfg.targets),
        "train_norms": bool(lora_cfg.get("train_norms", False)),
    }


def save_adapters(out_dir, model: nnx.Module, model_cfg) -> list[str]:
    """Writes out_dir/adapters.safetensors and out_dir/adapter_config.json (written last)."""
    from safetensors.numpy import save

    from samaudio_jax.io_atomic import atomic_write_bytes, atomic_write_text
    from samaudio_jax.paths import as_path

    arrays = adapter_arrays(model)
    if not arrays:
        raise ValueError("save_adapters: the model has no LoRA adapters (model.lora.rank is 0)")
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        out / TENSORS_FILE, save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    )
    meta = {
        "lora": _lora_json(model_cfg.lora),
        "scan_layers": bool(model_cfg.scan_layers),
        "num_layers": int(model_cfg.num_layers),
        "dim": int(model_cfg.dim),
    }
    atomic_write_text(out / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
    return [str(out / TENSORS_FILE), str(out / CONFIG_FILE)]


def load_adapters(directory, model: nnx.Module, model_cfg) -> None:
    """Loads adapters saved by save_adapters onto `model` (built with the same model.lora),
    bit-exactly; any mismatch is a one-line error naming the file and the key."""
    from safetensors.numpy import load

    from samaudio_jax.paths import as_path

    d = as_path(directory)
    cfg_file, tensors_file = d / CONFIG_FILE, d / TENSORS_FILE
    for f in (cfg_file, tensors_file):
        if not f.is_file():
            raise FileNotFoundError(f"load_adapters: no {f}")
    meta = json.loads(cfg_file.read_text())
    want = {
        "lora": _lora_json(model_cfg.lora),
        "scan_layers": bool(model_cfg.scan_layers),
        "num_layers": int(model_cfg.num_layers),
        "dim": int(model_cfg.dim),
    }
    for key in want:
        if meta.get(key) != want[key]:
            raise ValueError(f"{cfg_file}: {key} is {meta.get(key)!r}, the model has {want[key]!r}")
    arrays = load(tensors_file.read_bytes())
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    targets = {
        "/".join(str(p) for p in path): var
        for path, var in flat
        if any(str(p).endswith(SUFFIX) for p in path)
    }
    if set(arrays) != set(targets):
        missing = sorted(set(targets) - set(arrays))[:3]
        extra = sorted(set(arrays) - set(targets))[:3]
        raise ValueError(
            f"{tensors_file}: adapter keys differ (missing {missing}, unexpected {extra})"
        )
    for key, var in targets.items():
        value = arrays[key]
        if value.shape != var.get_value().shape or value.dtype != var.get_value().dtype:
            raise ValueError(
                f"{tensors_file}: {key} has {value.dtype}{list(value.shape)}, the model "
                f"expects {var.get_value().dtype}{list(var.get_value().shape)}"
            )
        var.set_value(jnp.asarray(value))
