"""`samaudio-jax make-shards --manifest M --out DIR`: audio files -> ArrayRecord shards.

The sample rate, minimum input rate and shard size come from the config's `data` section
(--config FILE and --config.data.x=... overrides).

Visual prompts: manifest rows with `video_features` (.npy, (T, Dv)) store those features;
rows with `video` (and optional `mask`) need --config.vision.enabled=true and run the
PE-Core tower (weights from config.vision.checkpoint; random, with a warning, when empty)
over the masked frames at the latent rate (one per codec hop: T = ceil(samples / hop)).

--out (and the manifest and the files it names) may be a URL (gs://...). The new dataset
is written beside --out (`OUT.new-<id>`) and replaces it only once complete; with
--overwrite the old one is deleted after that. Without --strict a bad row (a malformed
manifest row, an unreadable file, a record the writer rejects) is skipped and counted in
the summary line; a manifest with no usable row is an error (exit 1) and --out is left as
it was.
"""

from __future__ import annotations

import sys

from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.data.manifest import ManifestError, read_manifest
from samaudio_jax.data.shard_writer import WriteSummary, write_shards
from samaudio_jax.data.shards import AudioDecodeError, ShardError
from samaudio_jax.data.video_features import (
    VideoInputError,
    latent_hop_samples,
    shard_frame_encoder,
)
from samaudio_jax.paths import StorageBackendError


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True, help="JSONL or CSV manifest")
    parser.add_argument("--out", required=True, help="output shard directory")
    parser.add_argument("--config", default="", help="experiment file (default config if empty)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad file")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete dataset")


def run(args, overrides) -> int:
    config = load_config(args.config, overrides)
    data = config.data
    summary = WriteSummary()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    def bad_row(error: ManifestError) -> None:
        log(f"skipped {error}")
        summary.skip(str(error))

    try:
        entries = read_manifest(args.manifest, on_error=None if args.strict else bad_row)
        hop = encoder = None
        if any(e.has_video for e in entries):
            hop = latent_hop_samples(config)
            raw = [e for e in entries if e.video]
            if raw and not config.vision.enabled:
                raise ShardError(
                    f"{raw[0].where}: gives video {raw[0].video} but config.vision.enabled is "
                    "false; pass --config.vision.enabled=true to compute its features (or give "
                    "precomputed video_features)"
                )
            if raw:
                encoder = shard_frame_encoder(config)
        summary = write_shards(
            entries,
            args.out,
            sample_rate=data.sample_rate,
            max_shard_bytes=data.max_shard_bytes,
            strict=args.strict,
            min_input_rate=data.min_input_rate,
            overwrite=args.overwrite,
            log=log,
            video_hop_length=hop,
            video_encoder=encoder,
            summary=summary,
            source=f"manifest {args.manifest}",
        )
    except (
        ManifestError,
        AudioDecodeError,
        ShardError,
        VideoInputError,
        ValueError,
        StorageBackendError,
        OSError,
    ) as e:
        print(f"make-shards: error: {e}", file=sys.stderr)
        return 1
    print(f"make-shards: {summary} -> {args.out}")
    return 0
