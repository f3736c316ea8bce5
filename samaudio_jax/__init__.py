"""SAM Audio in JAX/Flax NNX: the public API.

    import samaudio_jax as sa
    model, config, report = sa.load_release("/path/to/sam-audio-large")   # config.json + checkpoint.pt
    velocity = model(noisy_audio, audio_features, text_features, text_mask, time, ...)
    sa.save_release(model, config, "/path/to/out", formats=("pt", "safetensors"))
    result = sa.separate(model, codec, text_encoder, ["mix.wav"], ["dog barking"], key=key)

Names resolve lazily so that `samaudio-jax --help` does not import JAX.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SAMAudioFlow": "samaudio_jax.model",
    "load_release": "samaudio_jax.checkpoint",
    "save_release": "samaudio_jax.checkpoint",
    "separate": "samaudio_jax.sample.separate",
    "load_separator": "samaudio_jax.sample.loading",
    "save_separator": "samaudio_jax.sample.loading",
    "build_codec": "samaudio_jax.codec",
    "build_text_encoder": "samaudio_jax.text",
    "default_config": "samaudio_jax.config_schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'samaudio_jax' has no attribute {name!r}")
