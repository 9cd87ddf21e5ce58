"""The `eapo` command line lists every command of DESIGN.md section 1 and each parses its --help; every
command is registered one way (`register(subparsers)` of a module in `eapo.cli.COMMAND_MODULES`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from types import ModuleType

import pytest

from eapo.cli import COMMAND_MODULES, build_parser, main
from eapo.cli.train_commands import parse_ks
from eapo.errors import ConfigError

COMMANDS = ["train", "eval", "quadrants", "ablate", "compare", "credit", "gradients", "report"]


def test_every_command_is_registered() -> None:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(COMMANDS) <= set(choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_and_debug_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--debug" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("module", COMMAND_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_one_way_to_register_a_command(module: ModuleType) -> None:
    """Each command module's `register` alone gives parsers that take the shared options and a handler."""
    parser = argparse.ArgumentParser(prog="eapo")
    module.register(parser.add_subparsers(dest="command"))
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert choices and set(choices) <= set(COMMANDS)
    for name, sub in choices.items():
        options = {o: a for a in sub._actions for o in a.option_strings}
        assert options["--no-progress"].default is False, name
        # SUPPRESS: `eapo --debug CMD` is not reset by the subcommand's own default.
        assert options["--debug"].default == argparse.SUPPRESS, name
        assert callable(sub.get_default("func")), name


def test_debug_before_or_after_the_command() -> None:
    parser = build_parser()
    for argv in (["--debug", "report", "--runs", "a"], ["report", "--runs", "a", "--debug"]):
        assert parser.parse_args(argv).debug
    assert not parser.parse_args(["report", "--runs", "a"]).debug


def test_parse_ks() -> None:
    assert parse_ks("1,8") == [1, 8] and parse_ks(" 4 ") == [4]
    for bad in ("", "0,8", "one"):
        with pytest.raises(ConfigError, match="--k"):
            parse_ks(bad)


def test_python_m_eapo_cli_is_the_eapo_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eapo.cli", "eval", "--k", "0"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.startswith("eapo: error: --k '0'") and done.stdout == ""
