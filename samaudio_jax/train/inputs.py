"""Which program the train step is: waveform batches (the codec, and a frozen T5, inside the
step) or latent batches from encode-shards output (neither in the program).

The dataset's index.json decides: audio shards keep today's path; a latent dataset swaps
the codec for `NoCodec` (its sizes, no weights) and, with a frozen T5 (text.kind "t5"),
drops the text encoder, since batches then carry the text table's features; the small
trainable text encoder stays (it trains, so it runs in the step).
"""

from __future__ import annotations

import dataclasses

from flax import nnx


class NoCodec(nnx.Module):
    """Rates and sizes of config.codec without weights (latent batches need no encoder)."""

    def __init__(self, codec_cfg):
        self.sample_rate = int(codec_cfg.sample_rate)
        self.hop_length = int(codec_cfg.hop_length)
        self.latent_dim = int(codec_cfg.latent_dim)


def no_codec(config) -> NoCodec:
    return NoCodec(config.codec)


def latent_factories(config, factories):
    """The module factories for latent batches: no codec weights; no T5 (its features come
    from the text table)."""
    factories = dataclasses.replace(factories, codec=no_codec)
    if config.text.kind == "t5":
        factories = dataclasses.replace(factories, text=None)
    return factories


def for_dataset(config, factories):
    """(factories, text table or None, "latents" | "waveforms") for config.data.dir. Only a
    latent dataset changes anything; it is checked against the config here (one line
    naming the index value and the config field when they disagree)."""
    if config.train.synthetic_data or not config.data.dir or config.data.tfds_name:
        return factories, None, "waveforms"
    from samaudio_jax.data import latent_shards
    from samaudio_jax.data.pipeline import open_split

    source = open_split(config.data, "train")
    if not isinstance(source, latent_shards.LatentShardReader):
        return factories, None, "waveforms"
    latent_shards.check_against_config(source, config)
    table = source.text_table() if config.text.kind == "t5" else None
    return latent_factories(config, factories), table, "latents"


def with_text_table(setup, table):
    """The setup with the table's empty-prompt features (conditioning dropout)."""
    if table is None:
        return setup
    return dataclasses.replace(setup, empty_text=table.empty())
