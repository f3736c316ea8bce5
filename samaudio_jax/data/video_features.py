"""Per-example visual-prompt features for data shards: (T, Dv) at the latent frame rate.

One feature row per latent frame: T = ceil(num_samples / hop), hop = the codec's hop in
samples at the data sample rate (1920 at 48 kHz, i.e. 25 frames/s). A manifest row gives
either `video_features` (a .npy already computed, shape-checked here) or `video` (+ `mask`),
which the PE-Core tower (vision.features.clip_features) embeds frame by frame: the masked
frame nearest each latent frame's timestamp; a video shorter than the audio reuses its last
frame (with a warning). Bad files raise VideoInputError naming the manifest row and field.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np

from samaudio_jax.config_checks import data_hop_samples
from samaudio_jax.data.manifest import ManifestEntry
from samaudio_jax.data.shards import ShardError
from samaudio_jax.io_read import readable_file


class VideoInputError(ValueError):
    """A video, mask or feature file could not be used; the message names row, field, file."""


def latent_hop_samples(config) -> int:
    """The codec hop in samples at config.data.sample_rate (one video feature per hop)."""
    return data_hop_samples(config)


def num_latent_frames(num_samples: int, hop: int) -> int:
    return math.ceil(int(num_samples) / int(hop))


def load_feature_file(path: str, frames: int, where: str) -> np.ndarray:
    """A (frames, Dv) float array from `path` (.npy); VideoInputError naming it otherwise."""
    field = f"{where}: video_features {path}"
    try:  # a URL's .npy is read into memory
        source = readable_file(path)
    except (FileNotFoundError, IsADirectoryError):
        raise VideoInputError(f"{field}: no such file") from None
    except EOFError:
        source = io.BytesIO()  # np.load names an empty file below
    try:
        feats = np.load(source, allow_pickle=False)
    except Exception as e:  # ValueError, OSError, EOFError, UnpicklingError...
        raise VideoInputError(f"{field}: not a readable .npy file ({e})") from None
    if not np.issubdtype(feats.dtype, np.floating):
        raise VideoInputError(f"{field}: dtype {feats.dtype}, expected a float array")
    if feats.ndim != 2 or feats.shape[0] != frames or feats.shape[1] == 0:
        raise VideoInputError(
            f"{field}: shape {feats.shape}, expected ({frames}, Dv): one row per latent frame, "
            f"{frames} = ceil(audio samples / hop) (`samaudio-jax video-features --frames "
            f"{frames}` writes that)"
        )
    if not np.all(np.isfinite(feats)):
        raise VideoInputError(f"{field}: holds NaN or infinite values")
    return np.asarray(feats, np.float32)


def entry_video_features(
    entry: ManifestEntry, num_samples: int, hop: int, sample_rate: int, encoder=None
) -> np.ndarray | None:
    """(T, Dv) float32 for one manifest entry, or None when it has no video."""
    where = entry.where or f"manifest entry {entry.id!r}"
    frames = num_latent_frames(num_samples, hop)
    if entry.video_features:
        return load_feature_file(entry.video_features, frames, where)
    if not entry.video:
        return None
    if encoder is None:
        raise ShardError(
            f"{where}: gives video {entry.video} but no vision tower is configured; set "
            "--config.vision.enabled=true (weights from config.vision.checkpoint)"
        )
    from samaudio_jax.vision.features import clip_features
    from samaudio_jax.vision.video import read_video

    try:
        video = read_video(entry.video)
    except (OSError, ValueError) as e:
        raise VideoInputError(f"{where}: video {entry.video}: {e}") from None
    mask = None
    if entry.mask:
        try:
            mask = read_video(entry.mask)
        except (OSError, ValueError) as e:
            raise VideoInputError(f"{where}: mask {entry.mask}: {e}") from None
    try:
        feats = clip_features(encoder, video, frames, mask, hop_length=hop, sample_rate=sample_rate)
    except ValueError as e:  # mask / video shape mismatches
        raise VideoInputError(f"{where}: video {entry.video} / mask {entry.mask}: {e}") from None
    return np.asarray(feats, np.float32)


def shard_frame_encoder(config):
    """The FrameEncoder make-shards and synth use: weights from config.vision.checkpoint, or
    random (seed config.seed) with a warning when it is empty (for tests and smoke runs)."""
    from samaudio_jax.vision.factory import frame_encoder_from_config
    from samaudio_jax.vision.features import FrameEncoder, random_tower
    from samaudio_jax.vision.pe import PEConfig

    vision = config.vision
    if vision.checkpoint:
        return frame_encoder_from_config(vision)
    warnings.warn(
        "config.vision.checkpoint is empty: video features come from a RANDOMLY initialised "
        f"PE-Core tower (seed {int(config.seed)}); fine for tests, useless for real training",
        stacklevel=2,
    )
    tower = random_tower(PEConfig.from_config(vision), int(config.seed))
    return FrameEncoder(tower, batch_size=int(vision.batch_size))
