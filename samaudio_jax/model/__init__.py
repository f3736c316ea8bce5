"""Flow network: the SAM Audio DiT and the release's wrapper around it."""

from samaudio_jax.model.dit import DiT
from samaudio_jax.model.flow import SAMAudioFlow

__all__ = ["DiT", "SAMAudioFlow"]
