"""SAM Audio large (2.94B parameters): 22 layers x D=2816, 22 heads, DACVAE latents, T5-base text.

The same config as `configs/sam.py:large` (sam.py holds the three sizes; this file keeps
the old path working). Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/large.py --workdir gs://BUCKET/runs/large \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/large.py --topology v5p:4x4x4
"""

from samaudio_jax.config_files import sibling_config


def get_config():
    return sibling_config(__file__, "sam.py:large")
