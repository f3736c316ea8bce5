"""Command-line parsing shared by the `samaudio-jax` dispatcher and the standalone
`python -m samaudio_jax.cli.<command>` entry points: leftovers must be config overrides.

Before a command runs, every URL among its arguments (`--workdir gs://...`, `--config.data.dir=
s3://...`) is checked once: a missing backend package, an unreachable server or a missing
bucket ends the command with one line naming the URL, as does any StorageBackendError later.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from samaudio_jax.config_checks import ConfigError
from samaudio_jax.paths import StorageBackendError, check_reachable, is_url


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """Parses `argv`; returns (args, the `--config.a.b=value` overrides left over).

    Any other leftover argument is a parser error (exit status 2, naming it).
    """
    args, rest = parser.parse_known_args(argv)
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    return args, rest


def argument_urls(args: argparse.Namespace, overrides: list[str]) -> list[str]:
    """The URLs among the parsed arguments and the override values, in order."""
    values = [v for v in vars(args).values() if isinstance(v, str)]
    values += [o.split("=", 1)[1] for o in overrides if "=" in o]
    return [v for v in values if is_url(v)]


def run_command(command: ModuleType, args: argparse.Namespace, overrides: list[str]) -> int:
    """Checks the arguments' URLs, then runs the command. A storage error or a bad config
    (missing file, bad override, value out of range) becomes one line on stderr and exit
    status 2, whichever command met it."""
    try:
        for url in argument_urls(args, overrides):
            check_reachable(url)
        return int(command.run(args, overrides) or 0)
    except (StorageBackendError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2


def run_standalone(command: ModuleType, prog: str, argv: list[str] | None = None) -> int:
    """Runs a subcommand module (`add_arguments`, `run`) as its own program named `prog`."""
    parser = argparse.ArgumentParser(prog=prog, description=command.__doc__.splitlines()[0])
    command.add_arguments(parser)
    args, overrides = parse_with_overrides(parser, sys.argv[1:] if argv is None else argv)
    return run_command(command, args, overrides)


def add_model_and_data(parser: argparse.ArgumentParser) -> None:
    """--checkpoint (any source samaudio_jax.load takes) and --data (held-out shards), as
    the commands that score a model on held-out mixtures take them."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training workdir (latest checkpoint, EMA when present), a release/export "
        "directory or a Hugging Face Hub id",
    )
    parser.add_argument("--data", required=True, help="directory with a test/ shard split")
