"""The codec interface every audio codec implements, and host-side input checks.

A codec turns mono waveforms (B, N) into frames-major latents (B, T, latent_dim) with
T = ceil(N / hop_length), channels last (what the flow network consumes), and back:
decode returns (B, T * hop_length) samples; the caller cuts to the original length.

`encode` / `decode` are pure JAX (no host checks, no Python branching on values) so they
run inside a jitted step. Validate host inputs first with `check_waveform` /
`check_latents`, outside jit.

Codecs are `nnx.Module`s: their fixed weights live in `CodecWeight` variables (not
`nnx.Param`), so an optimizer built with `wrt=nnx.Param` never updates them.
"""

from __future__ import annotations

import abc
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class CodecWeight(nnx.Variable):
    """A frozen codec weight (imported from a checkpoint or measured); never trained."""


class Codec(nnx.Module, abc.ABC):
    """Waveform <-> latent frames. Subclasses set the three size attributes in __init__."""

    sample_rate: int
    hop_length: int
    latent_dim: int

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for `num_samples` samples: ceil(num_samples / hop_length)."""
        return -(-int(num_samples) // self.hop_length)

    @abc.abstractmethod
    def encode(self, wav: jax.Array, num_samples: jax.Array | None = None) -> jax.Array:
        """(B, N) float32 -> (B, ceil(N / hop), latent_dim).

        num_samples (B,): valid samples per example of a padded batch; each example is then
        encoded as if alone and frames past ceil(num_samples / hop) are zero.
        """

    @abc.abstractmethod
    def decode(self, latents: jax.Array, num_frames: jax.Array | None = None) -> jax.Array:
        """(B, T, latent_dim) -> (B, T * hop) float32.

        num_frames (B,): valid frames per example; samples past num_frames * hop are zero.
        """


def frame_mask(num_samples: jax.Array, num_frames: int, hop_length: int) -> jax.Array:
    """(B,) valid sample counts -> (B, num_frames) bool, True where a frame holds audio.

    A frame counts as valid when any of its samples is valid (ceil), matching
    `Codec.num_frames`.
    """
    valid_frames = -(-jnp.asarray(num_samples) // hop_length)
    return jnp.arange(num_frames)[None, :] < valid_frames[:, None]


def check_waveform(wav, name: str = "wav") -> np.ndarray:
    """Validate a host waveform batch; returns it as float32 numpy of shape (B, N).

    Raises ValueError naming `name` for: wrong rank (must be (batch, samples)), an empty
    batch or zero samples, non-finite samples (NaN / inf), or a non-numeric dtype.
    """
    arr = np.asarray(wav)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric waveform array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected shape (batch, samples) (mono, rank 2), got rank {arr.ndim} "
            f"with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty audio, shape {arr.shape}; need >= 1 example and sample")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        b, n = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: {int(bad.sum())} non-finite samples (NaN or inf), first at "
            f"example {b}, sample {n}"
        )
    return arr


def check_latents(latents, latent_dim: int, name: str = "latents") -> np.ndarray:
    """Validate host latents (B, T, latent_dim); returns float32 numpy. ValueError otherwise."""
    arr = np.asarray(latents)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[-1] != latent_dim:
        raise ValueError(f"{name}: expected shape (batch, frames, {latent_dim}), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty latents, shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: {int((~np.isfinite(arr)).sum())} non-finite values")
    return arr


def jit_method(codec: Codec, name: str, **jit_kwargs):
    """A jitted `codec.<name>(*args, **kwargs)` with the codec's weights passed as
    arguments (not baked in as constants). Snapshots the weights: build it again after
    importing new ones."""
    graphdef, state = nnx.split(codec)

    @functools.partial(jax.jit, **jit_kwargs)
    def run(state, *args, **kwargs):
        return getattr(nnx.merge(graphdef, state), name)(*args, **kwargs)

    return functools.partial(run, state)
