"""`samaudio-jax`: one entry point; each subcommand lives in its own module under cli/.

A subcommand module defines `add_arguments(parser)` and `run(args, overrides) -> int`;
`overrides` are the `--config.a.b=value` arguments left after parsing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "info": (
        "samaudio_jax.cli.info",
        "print a config's parameter counts and shapes (nothing allocated)",
    ),
    "separate": (
        "samaudio_jax.cli.separate",
        "separate a described sound from audio files with a trained model",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samaudio-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
