"""docs/integrations.md runs as pasted: its Python blocks, in order, in one session (as the page says)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = (REPO_ROOT / "docs" / "integrations.md").read_text()


def test_python_blocks_run_in_one_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl", reason="TRL is not installed (pip install 'eapo[trl]')")
    from eapo.train.dumps import dump_paths, load_dump
    from eapo.train.logging import read_metrics

    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the snippets write runs/... under the working directory
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, "docs/integrations.md", "exec"), namespace)
    # The snippets' runs are eapo run folders that the analysis commands read.
    for run, algo, steps in (("trl-eapo", "eapo", 2), ("trl-grpo", "grpo", 1)):
        folder = tmp_path / "runs" / run
        assert [row["step"] for row in read_metrics(folder)] == list(range(1, steps + 1))
        assert load_dump(dump_paths(folder)[-1])["algo"] == algo


def test_named_files_exist() -> None:
    for path in set(re.findall(r"examples/[\w./-]+\.(?:py|sh|txt)", DOC)):
        assert (REPO_ROOT / path).is_file(), path
