"""Command-line parsing shared by the `samaudio-jax` dispatcher and the standalone
`python -m samaudio_jax.cli.<command>` entry points: leftovers must be config overrides."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from samaudio_jax.config_checks import ConfigError


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


def run_standalone(command: ModuleType, prog: str, argv: list[str] | None = None) -> int:
    """Runs a subcommand module (`add_arguments`, `run`) as its own program named `prog`."""
    parser = argparse.ArgumentParser(prog=prog, description=command.__doc__.splitlines()[0])
    command.add_arguments(parser)
    args, overrides = parse_with_overrides(parser, sys.argv[1:] if argv is None else argv)
    return report_config_errors(command.run, args, overrides)


def report_config_errors(run, args: argparse.Namespace, overrides: list[str]) -> int:
    """`run(args, overrides)`; a bad config (missing file, bad override, value out of range)
    becomes one line on stderr and exit status 2, whichever command loaded it."""
    try:
        return int(run(args, overrides) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
