"""Checkpoint I/O: the release's PyTorch layout (release_io) and its key maps (flow_keys,
vision_keys). Importing the package registers the vision encoder's part (vision_io)."""

from samaudio_jax.checkpoint import vision_io
from samaudio_jax.checkpoint.release_config import (
    model_config_from_release,
    read_release_config,
    release_config_from_model,
)
from samaudio_jax.checkpoint.release_io import (
    ReleasePart,
    ReleaseReport,
    flow_state_dict,
    load_release,
    read_state_dict,
    register_part,
    registered_parts,
    save_release,
)

vision_io.register()

__all__ = [
    "ReleasePart",
    "ReleaseReport",
    "flow_state_dict",
    "load_release",
    "model_config_from_release",
    "read_release_config",
    "read_state_dict",
    "register_part",
    "registered_parts",
    "release_config_from_model",
    "save_release",
]
