"""The `eapo` command line lists every command of DESIGN.md section 1 and each parses its --help; every
command is registered one way (`register(subparsers)` of a module in `eapo.cli.COMMAND_MODULES`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from eapo.cli import COMMAND_MODULES, build_parser, main
from eapo.cli.train_commands import parse_ks
from eapo.errors import ConfigError

COMMANDS = ["train", "eval", "quadrants", "ablate", "compare", "credit", "gradients", "report"]


def test_every_command_is_registered() -> None:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert choices is not None and set(COMMANDS) <= set(choices)


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
    assert isinstance(choices, dict) and choices and set(choices) <= set(COMMANDS)
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


def test_a_closed_output_pipe_ends_eapo_quietly(tmp_path: Path) -> None:
    """`eapo ... | head`: the reader goes away before eapo writes; no traceback, the shell's SIGPIPE code."""
    status = ["compare", "--status", "--seeds", "2", "--steps", "2", "--out", str(tmp_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "eapo.cli", *status],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the child has started: its first write meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141
    assert stderr == ""


def test_train_print_config_round_trips_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eapo.train.config import dump_yaml, load_config, to_dict

    overrides = ["--steps", "7", "--sampling.phase_tokens", "8", "--train.lr", "2e-4"]
    overrides += ["--run.output_dir", str(tmp_path / "runs")]
    assert main(["train", "--print-config", *overrides]) == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    config = load_config(printed)  # what --config reads back
    assert (config.train.steps, config.sampling.phase_tokens, config.train.lr) == (7, 8, 2e-4)
    assert to_dict(config) == to_dict(load_config(None, overrides))
    assert not (tmp_path / "runs").exists()  # nothing trained, no run folder made
    # With --resume: the run's recorded config, the overrides on top.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_yaml(config))
    assert main(["train", "--print-config", "--resume", str(run_dir), "--steps", "9"]) == 0
    resumed = yaml.safe_load(capsys.readouterr().out)
    assert resumed["train"]["steps"] == 9 and resumed["sampling"]["phase_tokens"] == 8
    # A typo is the usual error naming the valid fields, before anything loads.
    assert main(["train", "--print-config", "--train.bogus", "1"]) == 2
    assert "unknown field 'train.bogus'" in capsys.readouterr().err
