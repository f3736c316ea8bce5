"""Flat tensor files: a state dict (key -> array) read from or written to checkpoint.pt
(torch.save) or *.safetensors, locally or behind a URL.

This is the one reader and writer of such files; key names are the caller's business
(keymaps/ maps them to parameters). bfloat16 is kept as ml_dtypes.bfloat16 both ways, so a
read-then-write round trip is bit-exact in every dtype.
"""

from __future__ import annotations

import io
import json
import os
import struct

import numpy as np

from samaudio_jax.io_atomic import atomic_write_bytes, atomic_write_stream
from samaudio_jax.paths import as_path, check_reachable

PT_FILE, SAFETENSORS_FILE = "checkpoint.pt", "model.safetensors"


def torch_to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def numpy_to_torch(a: np.ndarray):
    import torch

    a = np.array(a, copy=True, order="C")  # writable and contiguous, as torch wants
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def cast(a: np.ndarray, name: str) -> np.ndarray:
    """`a` as dtype `name` ("bfloat16" included)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.asarray(a).astype(ml_dtypes.bfloat16)
    return np.asarray(a).astype(np.dtype(name))


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a .safetensors file from its header alone (8-byte length + JSON):
    no tensor is read, so a large file in a bucket costs one small ranged read."""
    with as_path(path).open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return [k for k in header if k != "__metadata__"]


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """(state dict, file read) of a directory (model.safetensors preferred, else
    checkpoint.pt) or of one file; a URL's file is read into memory, never copied to disk."""
    check_reachable(path)
    path = as_path(path)
    if path.is_dir():
        found = [p for p in (path / SAFETENSORS_FILE, path / PT_FILE) if p.is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: holds neither {SAFETENSORS_FILE} nor {PT_FILE}")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"release checkpoint: no such file: {path}")
    if path.suffix == ".safetensors":
        import safetensors.numpy

        data = path.read_bytes()
        try:
            return safetensors.numpy.load(data), str(path)
        except (TypeError, ValueError, KeyError):  # e.g. bfloat16, which numpy lacks
            import safetensors.torch

            tensors = safetensors.torch.load(data)
            return {k: torch_to_numpy(v) for k, v in tensors.items()}, str(path)
    import torch

    obj = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ValueError(f"{path}: expected a flat torch state_dict (key -> tensor)")
    return {k: torch_to_numpy(v) for k, v in obj.items()}, str(path)


def write_state_dict(state: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Writes `state` as *.safetensors or (any other name) torch.save, atomically."""
    path = as_path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        tensors = {k: numpy_to_torch(v) for k, v in state.items()}
        atomic_write_bytes(path, save(tensors))
    else:
        import torch

        tensors = {k: numpy_to_torch(v) for k, v in state.items()}
        atomic_write_stream(path, lambda f: torch.save(tensors, f))
