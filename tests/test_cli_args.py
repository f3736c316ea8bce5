"""Command-line parsing: leftovers must be `--config.x=v` overrides; anything else is refused
with the argument named, for the dispatcher and the standalone entry points alike."""

import argparse
import types

import pytest

from samaudio_jax.cli.args import parse_with_overrides, run_standalone
from samaudio_jax.cli.main import main as dispatcher_main


def _parser():
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--workdir", required=True)
    return parser


def test_config_overrides_are_returned_in_order():
    args, overrides = parse_with_overrides(
        _parser(), ["--config.a.b=1", "--workdir", "w", "--config.c=x y"]
    )
    assert args.workdir == "w"
    assert overrides == ["--config.a.b=1", "--config.c=x y"]


def test_an_unknown_argument_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as e:
        parse_with_overrides(_parser(), ["--workdir", "w", "--wrokdir", "v", "--config.a=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognised arguments: --wrokdir v" in err and "--config.a" not in err


def test_standalone_runs_the_module_with_its_own_prog_and_returns_its_status(capsys):
    seen = []
    command = types.ModuleType("fake", "Fake command: does a thing.\n\nMore text.")
    command.add_arguments = lambda parser: parser.add_argument("--n", type=int, default=0)
    command.run = lambda args, overrides: seen.append((args.n, overrides)) or 7
    assert run_standalone(command, "samaudio-jax fake", ["--n", "3", "--config.x=2"]) == 7
    assert seen == [(3, ["--config.x=2"])]
    with pytest.raises(SystemExit):
        run_standalone(command, "samaudio-jax fake", ["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: samaudio-jax fake") and "Fake command: does a thing." in out


def test_dispatcher_refuses_unknown_arguments_before_running_the_command(capsys):
    with pytest.raises(SystemExit) as e:
        dispatcher_main(["info", "--config", "configs/tiny.py", "--bogus"])
    assert e.value.code == 2
    assert "unrecognised arguments: --bogus" in capsys.readouterr().err
