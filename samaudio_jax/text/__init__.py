"""Text encoders for prompts: T5 (the release's) and a small trainable encoder."""
