"""SAM Audio in JAX/Flax NNX."""
