"""Loads a frozen T5 encoder + tokenizer from a local Hugging Face T5 directory.

The directory holds config.json, weights (model.safetensors, a sharded
model.safetensors.index.json, or pytorch_model.bin; only `encoder.*` and the shared
embedding are read, so a full T5ForConditionalGeneration directory works) and tokenizer
files (tokenizer.json or spiece.model). `T5_KEY_MAP` is the one declarative table from
Hugging Face names to this package's parameter paths.

The module is built abstractly with eager sharding off and filled with host arrays; shard
it afterwards (nnx.get_named_sharding + jax.device_put) when running on a mesh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.text.t5 import T5Network, T5TextEncoder
from samaudio_jax.text.t5_config import T5EncoderConfig
from samaudio_jax.text.tokenizer import T5Tokenizer

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight")


def read_t5_config(directory: str) -> T5EncoderConfig:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory}: no config.json; expected a Hugging Face T5 directory"
        )
    with open(path) as f:
        raw = json.load(f)
    return T5EncoderConfig.from_hf_dict(raw, where=path)


def _linear_in_out(w: np.ndarray) -> np.ndarray:
    return w.T


def T5_KEY_MAP(cfg: T5EncoderConfig) -> dict[tuple, tuple[str, Callable[[np.ndarray], np.ndarray]]]:  # noqa: N802
    """Our parameter path -> (Hugging Face key, transform from torch layout to ours).

    torch Linear weights are (out, in); ours are (in, ...) with heads split out.
    """
    d, h, k = cfg.d_model, cfg.num_heads, cfg.d_kv
    table: dict[tuple, tuple[str, Callable]] = {
        ("relative_attention_bias",): (
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            lambda w: w,
        ),
        ("final_norm", "weight"): ("encoder.final_layer_norm.weight", lambda w: w),
    }
    split_in = lambda w: w.T.reshape(d, h, k)  # noqa: E731  (h*k, d) -> (d, h, k)
    split_out = lambda w: w.T.reshape(h, k, d)  # noqa: E731  (d, h*k) -> (h, k, d)
    ffn_in = ("wi_0", "wi_1") if cfg.is_gated else ("wi",)
    for i in range(cfg.num_layers):
        attn = f"encoder.block.{i}.layer.0.SelfAttention"
        ffn = f"encoder.block.{i}.layer.1.DenseReluDense"
        table[("blocks", i, "attn_norm", "weight")] = (
            f"encoder.block.{i}.layer.0.layer_norm.weight",
            lambda w: w,
        )
        for name in ("q", "k", "v"):
            table[("blocks", i, name)] = (f"{attn}.{name}.weight", split_in)
        table[("blocks", i, "o")] = (f"{attn}.o.weight", split_out)
        table[("blocks", i, "ffn_norm", "weight")] = (
            f"encoder.block.{i}.layer.1.layer_norm.weight",
            lambda w: w,
        )
        for name in ffn_in:
            table[("blocks", i, name)] = (f"{ffn}.{name}.weight", _linear_in_out)
        table[("blocks", i, "wo")] = (f"{ffn}.wo.weight", _linear_in_out)
    return table


class _WeightReader:
    """Reads named float32 numpy tensors from whichever weight file the directory has."""

    def __init__(self, directory: str):
        self.directory = directory
        self.files: dict[str, str] = {}  # key -> file
        single = os.path.join(directory, "model.safetensors")
        index = os.path.join(directory, "model.safetensors.index.json")
        torch_bin = os.path.join(directory, "pytorch_model.bin")
        if os.path.isfile(single):
            self._index_safetensors([single])
        elif os.path.isfile(index):
            with open(index) as f:
                weight_map = json.load(f).get("weight_map", {})
            self.files = {key: os.path.join(directory, name) for key, name in weight_map.items()}
        elif os.path.isfile(torch_bin):
            self._torch = self._load_torch(torch_bin)
            self.files = dict.fromkeys(self._torch, torch_bin)
        else:
            raise FileNotFoundError(
                f"{directory}: no T5 weights; expected one of {WEIGHT_FILES} in the directory"
            )

    def _index_safetensors(self, paths):
        from safetensors import safe_open

        for path in paths:
            with safe_open(path, framework="numpy") as f:
                self.files.update(dict.fromkeys(f.keys(), path))

    @staticmethod
    def _load_torch(path):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"{path}: reading pytorch_model.bin needs torch installed") from e
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "float")}

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def get(self, key: str) -> np.ndarray:
        if key not in self.files:
            raise KeyError(f"{self.directory}: weights lack {key!r}")
        path = self.files[key]
        if path.endswith(".bin"):
            return self._torch[key]
        from safetensors import safe_open

        with safe_open(path, framework="flax") as f:  # flax handles bfloat16 files
            return np.asarray(f.get_tensor(key).astype(jnp.float32))


def t5_network_from_weights(
    cfg: T5EncoderConfig,
    get: Callable[[str], np.ndarray],
    has: Callable[[str], bool],
    *,
    dtype="float32",
    where: str = "weights",
) -> T5Network:
    """Builds the NNX T5 encoder from Hugging Face-named tensors (float32 storage)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: T5Network(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    graphdef, state = nnx.split(abstract)
    pure = nnx.to_pure_dict(state)

    values: dict[tuple, np.ndarray] = {}
    embedding_key = next((k for k in EMBEDDING_KEYS if has(k)), None)
    if embedding_key is None:
        raise KeyError(f"{where}: no token embedding; expected one of {EMBEDDING_KEYS}")
    values[("embedding",)] = get(embedding_key)
    for path, (key, transform) in T5_KEY_MAP(cfg).items():
        values[path] = transform(get(key))

    def fill(path, leaf):
        ours = tuple(p.key if hasattr(p, "key") else p.idx for p in path)
        value = values[ours]
        if value.shape != leaf.shape:
            raise ValueError(
                f"{where}: {'.'.join(map(str, ours))}: expected shape {leaf.shape} from the "
                f"config, got {value.shape}"
            )
        return jnp.asarray(value, jnp.float32)

    filled = jax.tree_util.tree_map_with_path(fill, pure)
    nnx.replace_by_pure_dict(state, filled)
    return nnx.merge(graphdef, state)


def load_t5_network(directory: str, *, dtype="float32") -> T5Network:
    """Builds the NNX T5 encoder with the weights of a local Hugging Face directory."""
    cfg = read_t5_config(directory)
    reader = _WeightReader(directory)
    return t5_network_from_weights(
        cfg, reader.get, reader.__contains__, dtype=dtype, where=directory
    )


def load_t5_text_encoder(
    directory: str, *, max_length: int = 512, bucket_length: int = 0, dtype="float32"
) -> T5TextEncoder:
    """Tokenizer + frozen T5 network from one local directory, behind TextEncoder."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"text.t5_dir: {directory!r} is not a directory")
    network = load_t5_network(directory, dtype=dtype)
    tokenizer = T5Tokenizer.from_directory(
        directory, max_length=max_length, bucket_length=bucket_length
    )
    return T5TextEncoder(network, tokenizer)
