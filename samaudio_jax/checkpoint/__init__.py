"""Checkpoint I/O: the PyTorch release layout and Orbax."""
