"""SAM Audio at pod scale, one file for the three sizes: `--config configs/sam.py:SIZE`
with SIZE small (496M parameters: 12 layers x D=1536, 12 heads), base (1.15B: 16 x 2048,
16 heads) or large (2.94B: 22 x 2816, 22 heads; the default). All three use DACVAE latents,
T5-base text, bfloat16 compute, scanned layers with remat, batch 1024 and FSDP over every
device; they differ in the sizes in SIZES only. configs/small.py, base.py and large.py are
the same configs under their old names.

Run (TPU pod slice, every worker):
  samaudio-jax train --config configs/sam.py:large --workdir gs://BUCKET/runs/large \
      --config.data.dir=gs://BUCKET/shards --config.text.t5_dir=/path/to/t5-base
Compile ahead of time for a topology (no TPU needed):
  samaudio-jax compile --config configs/sam.py:large --topology v5p:4x4x4
"""

from samaudio_jax.config_schema import default_config

# size -> (model.dim, model.num_layers, model.num_heads)
SIZES = {"small": (1536, 12, 12), "base": (2048, 16, 16), "large": (2816, 22, 22)}


def get_config(size: str = "large"):
    if size not in SIZES:
        raise ValueError(f"expected a size in {', '.join(SIZES)}, got {size!r}")
    c = default_config()
    c.name = size
    c.model.dim, c.model.num_layers, c.model.num_heads = SIZES[size]
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat_policy = "dots_no_batch"
    c.train.global_batch_size = 1024
    c.mesh.data = 1
    c.mesh.fsdp = -1
    return c
