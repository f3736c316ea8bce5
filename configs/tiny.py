"""Tiny SAM Audio flow network for CPU tests and smoke runs (2 layers, D=64).

Run:
  samaudio-jax train --config configs/tiny.py --workdir /tmp/tiny \
      --config.data.dir=/tmp/shards --config.train.steps=100
"""

from samaudio_jax.config_schema import default_config


def get_config():
    c = default_config()
    c.name = "tiny"
    m = c.model
    m.dim, m.num_layers, m.num_heads = 64, 2, 4
    m.text_dim, m.video_dim = 32, 48
    m.anchor_embedding_dim = 16
    m.frequency_embedding_dim = 32
    m.dropout = 0.0
    c.codec.kind = "frames"
    c.codec.sample_rate = 8000
    c.codec.hop_length = 16
    c.codec.latent_dim = 16  # model.latent_dim, out_channels, in_channels follow: 16, 32, 96
    c.text.kind = "small"
    c.text.small.dim = 32
    c.text.small.num_layers = 1
    c.text.small.num_heads = 2
    # A tiny PE-Core tower (vision stays disabled); its output_dim follows model.video_dim.
    v = c.vision
    v.image_size, v.patch_size, v.width, v.layers = 32, 8, 64, 2
    v.heads, v.pool_heads = 4, 2
    c.data.sample_rate = 8000
    c.data.segment_seconds = 0.25
    c.train.global_batch_size = 4
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 10
    c.train.weight_decay = 0.0
    c.train.checkpoint_every = 50
    c.train.log_every = 5
    return c
