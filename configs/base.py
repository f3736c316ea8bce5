"""SAM Audio base (1.15B parameters): 16 layers x D=2048, 16 heads, DACVAE latents, T5-base text.

The same config as `configs/sam.py:base` (sam.py holds the three sizes; this file keeps
the old path working). Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/base.py --workdir gs://BUCKET/runs/base \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/base.py --topology v5p:4x4x4
"""

from samaudio_jax.config_files import sibling_config


def get_config():
    return sibling_config(__file__, "sam.py:base")
