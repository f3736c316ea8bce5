"""`samaudio-jax synth --out DIR`: the synthetic corpus as DIR/train and DIR/test shards.

Classes, clip length and counts come from config.data.synth, the rate from
config.data.sample_rate (the tiny config: 8 kHz).

--out may be a URL (gs://...). Each split replaces an earlier one only once complete
(--overwrite); an existing split without --overwrite is a one-line error.

--video (or --config.data.synth.video=true) also writes DIR/videos/<split>/*.mkv, small
videos in which a square of the class's colour is visible while the event sounds; with
--config.vision.enabled=true their PE-Core features (one per latent frame) go into the
shards for visual-prompt training (weights from config.vision.checkpoint, random with a
warning when empty).
"""

from __future__ import annotations

import sys

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.config_checks import ConfigError
from samaudio_jax.data.synth import SOUND_CLASSES, SynthVideo, write_synth_corpus
from samaudio_jax.paths import StorageBackendError


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (train/ and test/)")
    parser.add_argument("--config", default="", help="experiment file (default config if empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    parser.add_argument("--video", action="store_true", help="also write a video per clip")


def run(args, overrides) -> int:
    config = load_config(args.config, overrides)
    synth = config.data.synth
    for name in synth.classes:
        if name not in SOUND_CLASSES:
            raise ConfigError(
                f"config.data.synth.classes: unknown sound class {name!r}; "
                f"known: {sorted(SOUND_CLASSES)}"
            )
    video = encoder = hop = None
    if args.video or synth.video:
        video = SynthVideo(size=int(synth.video_size), fps=float(synth.video_fps))
        if config.vision.enabled:
            from samaudio_jax.data.video_features import latent_hop_samples, shard_frame_encoder

            hop = latent_hop_samples(config)
            encoder = shard_frame_encoder(config)
        else:
            print("synth: videos only; --config.vision.enabled=true also stores their features")
    try:
        summaries = _write(args, config, synth, video, encoder, hop)
    except (ValueError, OSError, StorageBackendError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 1
    for split, summary in summaries.items():
        print(f"synth {split}: {summary} -> {args.out}/{split}")
    return 0


def _write(args, config, synth, video, encoder, hop):
    data = config.data
    return write_synth_corpus(
        args.out,
        seed=args.seed,
        classes=tuple(synth.classes),
        sample_rate=data.sample_rate,
        clip_seconds=synth.clip_seconds,
        train_per_class=synth.train_per_class,
        test_per_class=synth.test_per_class,
        max_shard_bytes=data.max_shard_bytes,
        overwrite=args.overwrite,
        video=video,
        video_encoder=encoder,
        hop_length=hop,
    )
