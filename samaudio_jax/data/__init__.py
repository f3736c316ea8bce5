"""Audio data: manifests, ArrayRecord shards, TFDS builder, Grain pipeline, synthetic corpus."""
