"""Demo config for real recordings (`samaudio-jax demo --manifest ... --test_manifest ...`).

The synthetic demo's recipe (configs/demo.py) with the settings measured on a corpus of
real sounds (speech, rendered instruments, recorded effects; bench/real_corpus.py) in
docs/real_sounds.md: activity-aware crops, the latent scale measured by `train` on the
training split. The same training without the demo:
  samaudio-jax make-shards --manifest TRAIN.jsonl --out DATA/train --config configs/demo_real.py
  samaudio-jax make-shards --manifest TEST.jsonl --out DATA/test --config configs/demo_real.py
  samaudio-jax train --config configs/demo_real.py --workdir runs/r --config.data.dir=DATA
"""

import importlib.util
import pathlib


def _demo_config():
    path = pathlib.Path(__file__).with_name("demo.py")
    spec = importlib.util.spec_from_file_location("_samaudio_demo_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config():
    c = _demo_config()
    c.name = "demo_real"
    d = c.data
    d.min_active_fraction = 0.5  # real files have silences; crops hold >= half target
    return c
