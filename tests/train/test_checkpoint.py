"""Reading a checkpoint back (eapo.train.checkpoint's loading half): state.json checks, whether a run had
finished, and strict weight loading. Saving, verification and whole resumes are covered by
tests/reliability/ (test_reliability_runs.py, test_reliability_process.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from eapo.errors import CheckpointError
from eapo.train.checkpoint import checkpoint_state, load_model_weights, resume_point, run_completed


def _checkpoint(tmp_path: Path, state: object) -> Path:
    path = tmp_path / "checkpoints" / "step_000002"
    path.mkdir(parents=True)
    (path / "state.json").write_text(json.dumps(state))
    return path


def test_checkpoint_state_reads_step_and_position_and_refuses_a_crafted_one(tmp_path: Path) -> None:
    good = _checkpoint(tmp_path / "a", {"step": 2, "data_position": 4, "completed": True})
    assert checkpoint_state(good) == {"step": 2, "data_position": 4, "completed": True}
    for state, field in (([], "JSON object"), ({"step": -1, "data_position": 0}, "step = -1"),
                         ({"step": 2, "data_position": True}, "data_position = True")):  # fmt: skip
        path = _checkpoint(tmp_path / field.replace(" ", "_"), state)
        with pytest.raises(CheckpointError, match=field):
            checkpoint_state(path)


def test_run_completed_from_state_or_from_the_final_evaluation_row(tmp_path: Path) -> None:
    assert run_completed(tmp_path, {"step": 2, "completed": True})
    assert not run_completed(tmp_path, {"step": 2, "completed": False})
    # Before state.json recorded it: finished when metrics.jsonl has step 2's final eval (no loss).
    rows = [{"step": 0, "eval/pass@1": 0.1}, {"step": 2, "loss": 0.5, "eval/pass@1": 0.2}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not run_completed(tmp_path, {"step": 2})  # a periodic eval shares its step's training row
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 2, "eval/pass@1": 0.3}) + "\n")
    assert run_completed(tmp_path, {"step": 2})
    assert not run_completed(tmp_path, {"step": 0})
    assert not run_completed(tmp_path / "missing", {"step": 2})


def test_resume_point_names_what_it_found_when_nothing_is_valid(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="none was saved"):
        resume_point(tmp_path)
    _checkpoint(tmp_path, {"step": 2, "data_position": 4})  # no manifest: not a complete checkpoint
    with pytest.raises(CheckpointError, match=r"step_000002: no manifest\.json"):
        resume_point(tmp_path)


def test_load_model_weights_is_strict_except_for_tied_embeddings(tmp_path: Path) -> None:
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(3, 2), "proj": torch.nn.Linear(2, 2)})
    weights = {"proj.weight": torch.ones(2, 2), "proj.bias": torch.zeros(2)}
    (tmp_path / "model").mkdir()
    save_file(weights, str(tmp_path / "model" / "model.safetensors"))
    load_model_weights(model, tmp_path)  # the embedding is absent from the file: tied, allowed
    proj = model["proj"]
    assert isinstance(proj, torch.nn.Linear)
    assert torch.equal(proj.weight.detach(), torch.ones(2, 2))
    save_file({**weights, "extra": torch.zeros(1)}, str(tmp_path / "model" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected \\['extra'\\]"):
        load_model_weights(model, tmp_path)
