"""`python -m samaudio_jax` runs the CLI."""

import sys

from samaudio_jax.cli.main import main

sys.exit(main())
