"""The README's Python examples run as pasted, and its commands name real subcommands and configs."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

README = (REPO_ROOT / "README.md").read_text()


def test_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_named_configs_exist() -> None:
    for path in set(re.findall(r"configs/[\w./-]+\.yaml", README)):
        assert (REPO_ROOT / path).is_file(), path


def test_test_command_is_the_ci_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python -m pytest -q\s+# the tests$", README, flags=re.M)
    assert ci.rstrip().endswith("python -m pytest -q")
