"""Loads a frozen T5 encoder + tokenizer from a Hugging Face T5 directory, local or behind a URL.

The directory holds config.json, weights (model.safetensors, a sharded
model.safetensors.index.json, or pytorch_model.bin; only `encoder.*` and the shared
embedding are read, so a full T5ForConditionalGeneration directory works) and tokenizer
files (tokenizer.json or spiece.model). `T5_KEY_MAP` is the one declarative table from
Hugging Face names to this package's parameter paths.

The module is built abstractly with eager sharding off and filled with host arrays; shard
it afterwards (nnx.get_named_sharding + jax.device_put) when running on a mesh.

Every file is reached through `paths.as_path`, so `text.t5_dir=gs://bucket/t5` reads the
bucket directly. Local safetensors files are memory-mapped (safe_open); a URL's are read into
memory once per file, and tensors are views of those bytes (see `_safetensors_views`), so only
the encoder's tensors are ever converted.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from samaudio_jax.paths import Path, PathLike, as_path, check_reachable, is_url
from samaudio_jax.text.t5 import T5Network, T5TextEncoder
from samaudio_jax.text.t5_config import T5EncoderConfig
from samaudio_jax.text.tokenizer import T5Tokenizer

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight")


def read_t5_config(directory: PathLike) -> T5EncoderConfig:
    path = as_path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory}: no config.json; expected a Hugging Face T5 directory"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return T5EncoderConfig.from_hf_dict(raw, where=str(path))


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


# safetensors dtype names -> numpy dtypes (bfloat16 from ml_dtypes, which jax brings).
_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _safetensors_views(data: bytes, where: str) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file held in memory, as views of `data` (no copy).

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
    byte offsets after the header) and the raw little-endian tensor bytes. safetensors'
    own in-memory loaders either lack bfloat16 (numpy) or convert every tensor of the file
    (torch, flax), a full T5's decoder included.
    """
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
    except (struct.error, ValueError) as e:
        raise ValueError(f"{where}: not a safetensors file ({e})") from None
    body = memoryview(data)[8 + size :]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{where}: tensor {key!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[key] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return out


class _WeightReader:
    """Reads named float32 numpy tensors from whichever weight file the directory has."""

    def __init__(self, directory: PathLike):
        self.directory = as_path(directory)
        self.files: dict[str, Path] = {}  # key -> file
        self._in_memory: dict[str, np.ndarray] = {}  # key -> tensor (URLs, pytorch_model.bin)
        single = self.directory / "model.safetensors"
        index = self.directory / "model.safetensors.index.json"
        torch_bin = self.directory / "pytorch_model.bin"
        if single.is_file():
            self._index_safetensors([single])
        elif index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            shards = {name: self.directory / name for name in sorted(set(weight_map.values()))}
            for path in shards.values():
                if not path.is_file():
                    raise FileNotFoundError(f"{index}: names a missing shard {path}")
            self.files = {key: shards[name] for key, name in weight_map.items()}
        elif torch_bin.is_file():
            self._in_memory = self._load_torch(torch_bin)
            self.files = dict.fromkeys(self._in_memory, torch_bin)
        else:
            raise FileNotFoundError(
                f"{directory}: no T5 weights; expected one of {WEIGHT_FILES} in the directory"
            )

    def _index_safetensors(self, paths):
        for path in paths:
            if is_url(path):  # read once into memory; tensors are views of the bytes
                tensors = _safetensors_views(path.read_bytes(), str(path))
                self._in_memory.update(tensors)
                self.files.update(dict.fromkeys(tensors, path))
                continue
            from safetensors import safe_open

            with safe_open(os.fspath(path), framework="numpy") as f:
                self.files.update(dict.fromkeys(f.keys(), path))

    @staticmethod
    def _load_torch(path: Path):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"{path}: reading pytorch_model.bin needs torch installed") from e
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "float")}

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def get(self, key: str) -> np.ndarray:
        if key not in self.files:
            raise KeyError(f"{self.directory}: weights lack {key!r}")
        path = self.files[key]
        if key not in self._in_memory and is_url(path):  # a shard is read when first needed:
            self._index_safetensors([path])  # a full T5's decoder-only shards never are
            if key not in self._in_memory:
                raise KeyError(f"{path}: lacks {key!r}, which the index places there")
        if key in self._in_memory:
            return np.asarray(self._in_memory[key], dtype=np.float32)
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="flax") as f:  # handles bfloat16
            # Eager even when the encoder is built under nnx.eval_shape (train.state's
            # build_setup): a traced jnp op here would fail on the tracer.
            with jax.ensure_compile_time_eval():
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


def load_t5_network(directory: PathLike, *, dtype="float32") -> T5Network:
    """Builds the NNX T5 encoder with the weights of a Hugging Face directory (local or URL)."""
    cfg = read_t5_config(directory)
    reader = _WeightReader(directory)
    return t5_network_from_weights(
        cfg, reader.get, reader.__contains__, dtype=dtype, where=str(directory)
    )


def load_t5_text_encoder(
    directory: PathLike, *, max_length: int = 512, bucket_length: int = 0, dtype="float32"
) -> T5TextEncoder:
    """Tokenizer + frozen T5 network from one directory (local or URL), behind TextEncoder."""
    check_reachable(directory)  # an unreachable bucket is named, not taken for a missing folder
    directory = as_path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"text.t5_dir: {str(directory)!r} is not a directory")
    network = load_t5_network(directory, dtype=dtype)
    tokenizer = T5Tokenizer.from_directory(
        directory, max_length=max_length, bucket_length=bucket_length
    )
    return T5TextEncoder(network, tokenizer)
