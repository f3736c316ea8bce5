"""Per-latent-frame visual features: the PE-Core tower run over masked frames, batched.

FrameEncoder jits the tower once per batch size and runs any number of frames through it in
fixed-size chunks (the last chunk zero-padded, so one compilation serves every clip).
clip_features gives (T, D) for one clip, the array a data shard stores per example;
flow_video_features stacks such arrays into the flow network's (B, D, T), zeros where an
example has no video or is shorter.

Training with visual prompts: make-shards (data/video_features.py) runs clip_features on
each example's masked video at the latent rate (T = ceil(samples / hop); `samaudio-jax
video-features` does it for one clip) and stores (T, output_dim) as float16 beside the audio
(data/shards.py); the Grain pipeline crops it with the audio segment's frame offset (offsets
are whole latent frames), zero-pads to the segment length and emits batch key "video"
(B, output_dim, T) plus "has_video" (B,). train/step.py takes batch["video"] and applies
visual-prompt dropout there (step.network_video: zeros, the release's "no video", with
probability train.cond_dropout per example).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.vision.pe import PEVisionTower
from samaudio_jax.vision.video import Video, unique_masked_frames


class FrameEncoder:
    """Runs a PEVisionTower over (N, S, S, 3) frames in jitted chunks of `batch_size`."""

    def __init__(self, tower: PEVisionTower, batch_size: int = 32, normalize: bool = True):
        if batch_size <= 0:
            raise ValueError(f"vision.batch_size must be > 0, got {batch_size}")
        self.cfg = tower.cfg
        self.batch_size = int(batch_size)
        self._graphdef, self._state = nnx.split(tower)

        @jax.jit
        def run(state, frames):
            return nnx.merge(self._graphdef, state)(frames, normalize=normalize)

        self._run = run

    def __call__(self, frames: jax.Array | np.ndarray) -> jax.Array:
        """(N, S, S, 3) normalised frames -> (N, output_dim) float32 (unit norm by default)."""
        frames = jnp.asarray(frames)
        n = frames.shape[0]
        if n == 0:
            return jnp.zeros((0, self.cfg.output_dim), jnp.float32)
        b = min(self.batch_size, n)
        outs = []
        for start in range(0, n, b):
            chunk = frames[start : start + b]
            pad = b - chunk.shape[0]
            if pad:
                chunk = jnp.concatenate([chunk, jnp.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self._run(self._state, chunk)[: b - pad])
        return jnp.concatenate(outs, axis=0)


def random_tower(cfg, seed: int = 0) -> PEVisionTower:
    """A randomly initialised tower (tests, smoke runs), drawn with numpy from `seed`:
    LayerNorm weights 1, biases 0, matrices N(0, 1/fan_in), embeddings N(0, 1/width).
    Faster than the module's own init, which compiles many small RNG programs."""
    abstract = nnx.eval_shape(lambda: PEVisionTower(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path]
        name = [n for n in names if n not in ("value", "")][-1]
        shape = leaf.shape
        if name == "weight":
            value = np.ones(shape)
        elif name == "bias":
            value = np.zeros(shape)
        elif len(shape) >= 2 and name not in ("positional_embedding", "probe"):
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        else:
            value = rng.standard_normal(shape) / np.sqrt(cfg.width)
        return jnp.asarray(value, leaf.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, state))


def clip_features(
    encoder: FrameEncoder,
    video: Video | str | os.PathLike,
    num_latent_frames: int,
    mask: Video | np.ndarray | str | os.PathLike | None = None,
    *,
    hop_length: int = 1920,
    sample_rate: int = 48000,
) -> jax.Array:
    """(num_latent_frames, output_dim): one embedding of the masked frame at each latent frame
    (each distinct video frame goes through the tower once)."""
    frames, index = unique_masked_frames(
        video,
        num_latent_frames,
        mask,
        hop_length=hop_length,
        sample_rate=sample_rate,
        image_size=encoder.cfg.image_size,
    )
    return encoder(frames)[jnp.asarray(index)]


def per_input_video_features(
    encoder: FrameEncoder,
    videos: list,
    num_latent_frames: list[int],
    masks: list | None = None,
    *,
    hop_length: int = 1920,
    sample_rate: int = 48000,
) -> list[np.ndarray | None]:
    """sample.separate's `video_features`: per input (output_dim, T_i) float32, or None where
    videos[i] is None (no visual prompt)."""
    if len(videos) != len(num_latent_frames) or (masks is not None and len(masks) != len(videos)):
        raise ValueError(
            f"videos ({len(videos)}), num_latent_frames ({len(num_latent_frames)}) and masks "
            f"({'-' if masks is None else len(masks)}) must have one entry per example"
        )
    out = []
    for i, video in enumerate(videos):
        mask = None if masks is None else masks[i]
        if video is None:
            if mask is not None:
                raise ValueError(f"masks[{i}] is given but videos[{i}] is None")
            out.append(None)
            continue
        feats = clip_features(
            encoder,
            video,
            int(num_latent_frames[i]),
            mask,
            hop_length=hop_length,
            sample_rate=sample_rate,
        )
        out.append(np.asarray(feats, np.float32).T)
    return out


def video_prompt_features(
    encoder: FrameEncoder,
    videos: list,
    num_latent_frames: list[int],
    length: int,
    masks: list | None = None,
    *,
    hop_length: int = 1920,
    sample_rate: int = 48000,
) -> jax.Array:
    """The flow network's masked_video_features (B, D, length) for a batch: example i uses
    videos[i] (path, Video or None = no video) masked by masks[i] over its first
    num_latent_frames[i] frames; padding frames and examples without video are zeros."""
    per_input = per_input_video_features(
        encoder, videos, num_latent_frames, masks, hop_length=hop_length, sample_rate=sample_rate
    )
    per_example = [None if f is None else f.T for f in per_input]
    return flow_video_features(per_example, length, encoder.cfg.output_dim)


def flow_video_features(per_example: list[jax.Array | np.ndarray | None], length: int, dim: int):
    """Stacks (T_i, dim) arrays (None = no video) into (B, dim, length), zero padded/cropped."""
    out = np.zeros((len(per_example), dim, length), np.float32)
    for i, feats in enumerate(per_example):
        if feats is None:
            continue
        feats = np.asarray(feats, np.float32)
        if feats.ndim != 2 or feats.shape[1] != dim:
            raise ValueError(f"video features {i}: expected (T, {dim}), got {feats.shape}")
        t = min(length, feats.shape[0])
        out[i, :, :t] = feats[:t].T
    return jnp.asarray(out)
