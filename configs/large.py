"""SAM Audio large (2.94B parameters): 22 layers x D=2816, 22 heads, DACVAE latents, T5-base text.

Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/large.py --workdir gs://BUCKET/runs/large \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/large.py --topology v5p:4x4x4
"""

from samaudio_jax.config_schema import default_config


def get_config():
    c = default_config()
    c.name = "large"
    c.model.dim, c.model.num_layers, c.model.num_heads = 2816, 22, 22
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat_policy = "dots_no_batch"
    c.train.global_batch_size = 1024
    c.mesh.data = 1
    c.mesh.fsdp = -1
    return c
