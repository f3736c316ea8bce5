"""SAM Audio in JAX/Flax NNX: the public API.

    import samaudio_jax as sa
    sep = sa.load("facebook/sam-audio-large", t5_dir="/path/to/t5-base")  # or a release dir,
    # an export dir, a training workdir (newest step, or step=N); sep.model, .codec, ...
    result = sep.separate(["mix.wav"], ["dog barking"])
    sa.save(sep, "/path/to/out")            # the release layout; sa.load reads it back exactly

Names resolve lazily so that `samaudio-jax --help` does not import JAX.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load": "samaudio_jax.sample.loading",
    "save": "samaudio_jax.sample.loading",
    "Separator": "samaudio_jax.sample.loading",
    "build_separator": "samaudio_jax.sample.loading",
    "separate": "samaudio_jax.sample.separate",
    "SAMAudioFlow": "samaudio_jax.model",
    "build_codec": "samaudio_jax.codec",
    "build_text_encoder": "samaudio_jax.text",
    "default_config": "samaudio_jax.config_schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'samaudio_jax' has no attribute {name!r}")
