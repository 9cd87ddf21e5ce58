"""The analysis commands' JSON helpers always write valid JSON (`eapo.analysis.run_io`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from eapo.analysis.run_io import json_ready, read_json, write_json, write_report_json


@dataclass
class _Pair:
    mean: float
    low: float


def test_json_ready_converts_what_analyses_hold() -> None:
    value = {
        "pair": _Pair(0.123456789, math.nan),
        "path": Path("a/b"),
        "shape": (2, 3),
        "np": np.float64(0.5),
        "torch": torch.tensor(3),
        "inf": -math.inf,
        1: [True, None],
    }
    ready = json_ready(value)
    assert ready == {
        "pair": {"mean": 0.123456789, "low": None},
        "path": "a/b",
        "shape": [2, 3],
        "np": 0.5,
        "torch": 3,
        "inf": None,
        "1": [True, None],
    }
    assert json_ready(value, digits=3)["pair"]["mean"] == 0.123
    with pytest.raises(TypeError, match="object"):
        json_ready(object())


def test_written_files_are_strict_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "summary.json", {"norm": math.nan, "values": [1.0, math.inf]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard constant {name}"))
    assert read_json(path) == {"norm": None, "values": [1.0, None]}
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, not left behind
    report = write_report_json(tmp_path / "report.json", {"auc": 0.1234567891})
    assert read_json(report) == {"auc": 0.123457}
    assert read_json(tmp_path / "missing.json") is None
