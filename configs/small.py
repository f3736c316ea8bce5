"""SAM Audio small (496M parameters): 12 layers x D=1536, 12 heads, DACVAE latents, T5-base text.

The same config as `configs/sam.py:small` (sam.py holds the three sizes; this file keeps
the old path working). Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/small.py --workdir gs://BUCKET/runs/small \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/small.py --topology v5p:4x4x4
"""

from samaudio_jax.config_files import sibling_config


def get_config():
    return sibling_config(__file__, "sam.py:small")
