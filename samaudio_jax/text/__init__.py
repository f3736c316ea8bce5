"""Text encoders for prompts: T5 (the release's) and a small trainable encoder."""

from samaudio_jax.text.base import TextEncoder
from samaudio_jax.text.cache import TextFeatureCache, precompute_text_features, stack_text_features
from samaudio_jax.text.factory import build_text_encoder

__all__ = [
    "TextEncoder",
    "TextFeatureCache",
    "build_text_encoder",
    "precompute_text_features",
    "stack_text_features",
]
