"""`samaudio-jax make-shards --manifest M --out DIR`: audio files -> ArrayRecord shards.

The sample rate, minimum input rate and shard size come from the config's `data` section
(--config FILE and --config.data.x=... overrides).
"""

from __future__ import annotations

import sys

from samaudio_jax.cli.config_loader import apply_overrides, load_config
from samaudio_jax.config_schema import default_config
from samaudio_jax.data.manifest import ManifestError, read_manifest
from samaudio_jax.data.shards import AudioDecodeError, ShardError, write_shards


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True, help="JSONL or CSV manifest")
    parser.add_argument("--out", required=True, help="output shard directory")
    parser.add_argument("--config", default="", help="experiment file (default config if empty)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad file")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete dataset")


def run(args, overrides) -> int:
    config = load_config(args.config, overrides) if args.config else default_config()
    if not args.config:
        apply_overrides(config, overrides)
    data = config.data
    try:
        entries = read_manifest(args.manifest)
        summary = write_shards(
            entries,
            args.out,
            sample_rate=data.sample_rate,
            max_shard_bytes=data.max_shard_bytes,
            strict=args.strict,
            min_input_rate=data.min_input_rate,
            overwrite=args.overwrite,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    except (ManifestError, AudioDecodeError, ShardError) as e:
        print(f"make-shards: error: {e}", file=sys.stderr)
        return 1
    print(f"make-shards: {summary} -> {args.out}")
    return 0
