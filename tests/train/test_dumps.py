"""Rollout dumps (eapo.train.dumps): safetensors + JSON round trip, old .pt dumps, errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import pytest
import torch

from eapo.errors import DataError
from eapo.train.dumps import SCHEMA_VERSION, dump_paths, dump_step, load_dump, write_dump


class DumpTensors(TypedDict):
    """The tensors `write_dump` takes as keywords (its prompt_index left to the default)."""

    response_ids: torch.Tensor
    response_mask: torch.Tensor
    rewards: torch.Tensor
    entropy: torch.Tensor
    logprobs: torch.Tensor
    sum_sq_probs: torch.Tensor
    advantages: torch.Tensor
    shaped_advantages: torch.Tensor


def _batch(rows: int = 4, length: int = 5) -> DumpTensors:
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[1, 3:] = False
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * mask
    return {
        "response_ids": torch.randint(0, 50, (rows, length), generator=gen),
        "response_mask": mask,
        "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0]),
        "entropy": torch.rand(rows, length, generator=gen) * mask,
        "logprobs": -torch.rand(rows, length, generator=gen) * mask,
        "sum_sq_probs": torch.rand(rows, length, generator=gen, dtype=torch.float64) * mask,
        "advantages": advantages,
        "shaped_advantages": advantages * 1.1,
    }


def test_round_trip_keeps_every_tensor_and_the_metadata(tmp_path: Path) -> None:
    batch = _batch()
    path = write_dump(
        tmp_path / "rollouts",
        7,
        host="trl",
        algo="eapo",
        group_size=2,
        temperature=0.7,
        prompts=["p0", "p1"],
        completions=["a", "b", "c", "d"],
        response_tokens=[["x"]] * 4,
        world_size=2,
        **batch,
    )
    assert path.name == "step_000007.safetensors" and dump_step(path) == 7
    assert sorted(p.name for p in (tmp_path / "rollouts").iterdir()) == [
        "step_000007.json",
        "step_000007.safetensors",
    ]  # no temporary file left behind
    dump = load_dump(path)
    for key, value in batch.items():
        assert isinstance(value, torch.Tensor) and torch.equal(dump[key], value), key
    assert dump["sum_sq_probs"].dtype == torch.float64 and dump["response_mask"].dtype == torch.bool
    assert dump["prompt_index"].tolist() == [0, 0, 1, 1]
    assert (dump["step"], dump["group_size"], dump["temperature"], dump["host"]) == (7, 2, 0.7, "trl")
    assert (dump["rank"], dump["world_size"], dump["schema_version"]) == (0, 2, SCHEMA_VERSION)
    assert dump["completions"] == ["a", "b", "c", "d"] and dump["prompts"] == ["p0", "p1"]
    metadata = json.loads(path.with_suffix(".json").read_text())
    assert "sign of advantages" in metadata["conventions"]["quadrants"]
    assert metadata["tensors"]["entropy"] == {"dtype": "float32", "shape": [4, 5]}


def test_old_pt_dumps_are_read_without_pickle_and_safetensors_wins(tmp_path: Path) -> None:
    folder = tmp_path / "rollouts"
    folder.mkdir()
    old: dict[str, Any] = {"step": 1, "group_size": 2, "algo": "grpo", "completions": ["a"] * 4, **_batch()}
    torch.save(old, folder / "step_000001.pt")
    torch.save(old | {"step": 2}, folder / "step_000002.pt")
    write_dump(folder, 2, host="eapo", algo="grpo", group_size=2, temperature=1.0, **_batch())
    (folder / "step_000003.json").write_text("{}")  # metadata without tensors is not a dump
    paths = dump_paths(tmp_path)
    assert [p.name for p in paths] == ["step_000001.pt", "step_000002.safetensors"]
    legacy = load_dump(paths[0])
    assert legacy["host"] == "eapo" and legacy["schema_version"] == 0
    assert torch.equal(legacy["entropy"], old["entropy"])


def test_bad_dumps_raise_data_errors_that_name_the_file(tmp_path: Path) -> None:
    path = write_dump(tmp_path, 1, host="eapo", algo="eapo", group_size=2, temperature=1.0, **_batch())
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"schema_version": 99}))
    with pytest.raises(DataError, match="schema_version 99"):
        load_dump(path)
    meta.unlink()
    with pytest.raises(DataError, match=r"step_000001\.safetensors"):
        load_dump(path)
    batch = _batch()
    batch["entropy"] = batch["entropy"][:, :3]
    with pytest.raises(ValueError, match="entropy"):
        write_dump(tmp_path, 2, host="eapo", algo="eapo", group_size=2, temperature=1.0, **batch)
    with pytest.raises(ValueError, match="whole groups"):
        write_dump(tmp_path, 3, host="eapo", algo="eapo", group_size=3, temperature=1.0, **_batch())
