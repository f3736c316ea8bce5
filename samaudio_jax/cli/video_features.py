"""`samaudio-jax video-features --video V [--mask M] --out F.npy`: the PE-Core embedding of the
masked frame at each latent frame of a clip, (T, output_dim) float32, the per-example array
a data shard stores for visual-prompt training.

T is --frames, else ceil(--seconds * sample_rate / hop_length), else the video's duration at
the latent rate. Weights: config.vision.checkpoint (a release directory or file holding
vision_encoder.*); sizes and numerics from config.vision.
"""

from __future__ import annotations

import math

import numpy as np

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.io_atomic import atomic_write_stream
from samaudio_jax.paths import as_path


def add_arguments(parser) -> None:
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--mask", default="", help="mask video (non-zero = hidden), same frames")
    parser.add_argument("--out", required=True, help="output .npy file")
    parser.add_argument("--frames", type=int, default=0, help="latent frames (0 = from --seconds)")
    parser.add_argument("--seconds", type=float, default=0.0, help="audio length (0 = video's)")
    parser.add_argument("--config", default="", help="experiment file (default config if empty)")


def run(args, overrides) -> int:
    from samaudio_jax.vision.factory import frame_encoder_from_config
    from samaudio_jax.vision.features import clip_features
    from samaudio_jax.vision.video import read_video

    config = load_config(args.config, overrides)
    hop, rate = int(config.codec.hop_length), int(config.codec.sample_rate)
    video = read_video(args.video)
    if args.frames > 0:
        frames = args.frames
    else:
        seconds = args.seconds if args.seconds > 0 else video.duration
        frames = math.ceil(seconds * rate / hop)
    encoder = frame_encoder_from_config(config.vision)
    feats = np.asarray(
        clip_features(encoder, video, frames, args.mask or None, hop_length=hop, sample_rate=rate)
    )
    out = as_path(args.out)
    atomic_write_stream(out, lambda f: np.save(f, feats.astype(np.float32)))
    print(f"video-features: {feats.shape[0]} frames x {feats.shape[1]} -> {out}")
    return 0
