"""benchmarks/smollm2_study.sh, read as text and run only where it fails fast: every part its header lists
(and each grid its "also" names) reaches its own branch of the case statement, every branch is listed,
and what it collects lands under the names issue #19 asks for."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "smollm2_study.sh"
ISSUE_PREFIXES = (
    "compare_smollm2_",
    "ablation_",  # ablation_<mode>_smollm2.json
    "credit_smollm2_",
    "gradients_smollm2_",
    "gradients_cosine_smollm2_",
    "quadrants_smollm2_",
)


def _documented_parts() -> list[str]:
    parts = []
    for line in SCRIPT.read_text().splitlines():
        match = re.match(r"#   bash benchmarks/smollm2_study\.sh (\S+)\s+# (.*)", line)
        if match:
            parts.append(match.group(1))
            also = re.match(r"also (.*)", match.group(2))
            if also:  # "also exploratory, isolate, eapo_without": the same command with those parts
                parts += [p.strip() for p in also.group(1).split(",")]
    return parts


def _case_patterns() -> list[str]:
    """The top-level branches of `case "$part" in`, in order (the first match wins, as in bash)."""
    text = SCRIPT.read_text()
    body = text[text.index('    case "$part" in\n    gate)') :]
    return [p for line in re.findall(r"^    ([^\s#][^\n]*)\)$", body, re.M) for p in line.split(" | ")]


def test_every_documented_part_reaches_its_own_branch() -> None:
    patterns = _case_patterns()
    assert patterns[-1] == "*", "the last branch must reject unknown parts"
    parts = _documented_parts()
    assert {"gate", "headline", "isolate", "analyses_end", "complex_headline"} <= set(parts)
    for part in parts:
        first = next(p for p in patterns if fnmatch.fnmatchcase(part, p))
        assert first != "*", f"{part}: no branch"
        # A literal branch for the part when there is one: an earlier glob must not catch it first.
        assert first == part or part not in patterns, f"{part} is caught by {first} before its own branch"
    for pattern in patterns[:-1]:
        assert any(fnmatch.fnmatchcase(part, pattern) for part in parts), f"{pattern}: not documented"


def test_collected_reports_are_named_as_the_issue_asks() -> None:
    names = re.findall(r'collect(?:_with_figures)? "[^"]+" "?([\w$.-]+\.json)"?', SCRIPT.read_text())
    assert len(names) >= 10
    for name in names:
        assert name.startswith(ISSUE_PREFIXES), name
        assert "smollm2" in name, name


def test_an_unknown_part_fails_before_it_runs_anything() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "no_such_part"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown part: no_such_part" in result.stderr
