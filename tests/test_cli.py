"""The `eapo` command line lists every command of DESIGN.md section 1 and each parses its --help."""

from __future__ import annotations

import pytest

from eapo.cli import build_parser, main

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
