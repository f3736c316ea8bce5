"""Command-line interface: `samaudio-jax COMMAND` (see cli/main.py for the list)."""
