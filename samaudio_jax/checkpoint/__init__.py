"""Checkpoint layouts and workdirs (the layer that knows files; keymaps/ knows tensor names).

load.py         load_bundle(source): a workdir, a release/export directory or a Hub id -> Bundle
bundle.py       Bundle (every part a source holds, as modules), config helpers
release_dir.py  the release layout (config.json + checkpoint.pt / model.safetensors): read, write
workdir.py      WORKDIR/checkpoints (Orbax, read-only readers) and WORKDIR/frozen (frozen parts)
hub.py          Hub ids through huggingface_hub (revision, HF_TOKEN, cache, offline mode)
orbax_io.py     the trainer's Orbax manager; lock.py the workdir's one-writer lock
release_config  the release's config.json <-> config.model
"""

from samaudio_jax.checkpoint.bundle import Bundle
from samaudio_jax.checkpoint.load import load_bundle, source_kind
from samaudio_jax.checkpoint.release_config import (
    model_config_from_release,
    read_release_config,
    release_config_from_model,
)
from samaudio_jax.checkpoint.release_dir import read_release_dir, write_release_dir

__all__ = [
    "Bundle",
    "load_bundle",
    "model_config_from_release",
    "read_release_config",
    "read_release_dir",
    "release_config_from_model",
    "source_kind",
    "write_release_dir",
]
