"""SAM Audio small (496M parameters): 12 layers x D=1536, 12 heads, DACVAE latents, T5-base text.

Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/small.py --workdir gs://BUCKET/runs/small \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/small.py --topology v5p:4x4x4
"""

from samaudio_jax.config_schema import default_config


def get_config():
    c = default_config()
    c.name = "small"
    c.model.dim, c.model.num_layers, c.model.num_heads = 1536, 12, 12
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat_policy = "dots_no_batch"
    c.train.global_batch_size = 1024
    c.mesh.data = 1
    c.mesh.fsdp = -1
    return c
