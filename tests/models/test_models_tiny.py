from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eapo.errors import ConfigError
from eapo.models import (
    ModelConfig,
    TinyConfig,
    build_char_tokenizer,
    build_tiny_model,
    ensure_tiny_model,
    load_policy,
)
from eapo.models import tiny as tiny_module
from eapo.tasks import Task, build_prompt

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


def test_tiny_model_saves_and_loads(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(TinyConfig(n_layer=1, n_embd=16, n_head=2), tokenizer).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    ids = loaded_tokenizer(["Calculate 1 + 2.\nAnswer:"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-6)
    assert loaded.config.vocab_size == len(tokenizer)
    assert loaded.config.eos_token_id == tokenizer.eos_token_id


def test_same_seed_same_initial_weights() -> None:
    tokenizer = build_char_tokenizer()
    first = build_tiny_model(TinyConfig(n_layer=1, n_embd=16, n_head=1, seed=3), tokenizer)
    second = build_tiny_model(TinyConfig(n_layer=1, n_embd=16, n_head=1, seed=3), tokenizer)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rejects_heads_that_do_not_divide_the_width() -> None:
    with pytest.raises(ConfigError, match="n_embd"):
        build_tiny_model(TinyConfig(n_embd=30, n_head=4), build_char_tokenizer())


def test_warmup_stops_at_first_evaluation_inside_the_band(
    tmp_path: Path, small_task: Task, quick_tiny: TinyConfig
) -> None:
    config = dataclasses.replace(quick_tiny, target_accuracy=(0.0, 1.0))
    path = ensure_tiny_model(small_task, config, tmp_path, progress=False)
    record = json.loads((path / tiny_module.SFT_RECORD).read_text())
    assert record["in_band"] is True
    assert record["steps"] == record["steps_run"] == config.sft_eval_every
    assert [entry["step"] for entry in record["history"]] == [config.sft_eval_every]


def test_warmup_keeps_the_closest_checkpoint_when_the_band_is_missed(
    tmp_path: Path, small_task: Task, quick_tiny: TinyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(quick_tiny, target_accuracy=(0.99, 1.0))
    with caplog.at_level(logging.WARNING, logger="eapo.models.tiny"):
        path = ensure_tiny_model(small_task, config, tmp_path, progress=False)
    record = json.loads((path / tiny_module.SFT_RECORD).read_text())
    assert record["in_band"] is False
    assert record["steps_run"] == config.sft_max_steps
    assert record["accuracy"] == max(entry["accuracy"] for entry in record["history"])
    assert "never entered" in caplog.text


def test_ensure_tiny_model_caches(
    tmp_path: Path, small_task: Task, quick_tiny: TinyConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_tiny_model(small_task, quick_tiny, tmp_path, progress=False)
    assert (first / "config.json").is_file() and (first / "tokenizer.json").is_file()
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging folder left behind

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached tiny model must not be trained again")

    monkeypatch.setattr(tiny_module, "supervised_warmup", no_training)
    started = time.perf_counter()
    second = ensure_tiny_model(small_task, quick_tiny, tmp_path, progress=False)
    assert second == first
    assert time.perf_counter() - started < 0.5
    # A different tiny config is a different cache entry.
    assert tiny_module.tiny_cache_key(small_task, quick_tiny) != tiny_module.tiny_cache_key(
        small_task, dataclasses.replace(quick_tiny, seed=1)
    )


def test_load_policy_tiny(tmp_path: Path, small_task: Task, quick_tiny: TinyConfig) -> None:
    config = ModelConfig(name="tiny", device="cpu", tiny=quick_tiny)
    model, tokenizer = load_policy(config, small_task, cache_dir=tmp_path, progress=False)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    prompt = build_prompt(small_task.eval[0], tokenizer, small_task.config)
    assert prompt.endswith("Answer:")  # no chat template: the plain template
    assert tokenizer.decode(tokenizer(prompt)["input_ids"]) == prompt


def test_load_policy_tiny_needs_a_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="task"):
        load_policy(ModelConfig(name="tiny"), None, cache_dir=tmp_path)


def test_warmup_rejects_examples_longer_than_max_len(
    tmp_path: Path, small_task: Task, quick_tiny: TinyConfig
) -> None:
    config = dataclasses.replace(quick_tiny, max_len=10)
    with pytest.raises(ConfigError, match="max_len"):
        ensure_tiny_model(small_task, config, tmp_path, progress=False)
    assert not (tmp_path / "tiny").exists()  # nothing is written before the warm-up succeeds


@pytest.mark.slow
def test_default_warmup_lands_in_the_band_within_four_minutes(tmp_path: Path) -> None:
    """The configs/tiny.yaml task and tiny model, at full size: the warm-up `eapo train` runs first."""
    import yaml

    from eapo.tasks import TaskConfig, load_task

    spec = yaml.safe_load((CONFIGS_DIR / "tiny.yaml").read_text())
    task = load_task(TaskConfig(**spec["task"]))
    tiny_config = TinyConfig(**spec["model"]["tiny"])
    path = ensure_tiny_model(task, tiny_config, tmp_path, progress=False, device="cpu")
    record = json.loads((path / tiny_module.SFT_RECORD).read_text())
    low, high = tiny_config.target_accuracy
    assert record["in_band"] and low <= record["accuracy"] <= high
    assert record["seconds"] < 240


def test_the_default_warm_up_ships_in_the_package_pinned_by_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eapo train`'s default starts from packaged weights on every machine: the manifest answers to the
    default config's cache key (re-make it with `python scripts/ship_tiny_model.py` when this fails), its
    files match their pinned SHA-256, and the cache gets a copy without any training."""
    from eapo.tasks import load_task
    from eapo.train.config import load_config

    config = load_config(None)
    assert config.model.dtype == "float32"  # the tiny default is fp32 on every CPU
    task = load_task(config.task)
    key = tiny_module.tiny_cache_key(task, config.model.tiny)
    manifest = json.loads((tiny_module.SHIPPED_TINY_DIR / tiny_module.SHIPPED_TINY_MANIFEST).read_text())
    assert manifest["cache_key"] == key, "the packaged tiny model is stale: run scripts/ship_tiny_model.py"
    files = tiny_module.shipped_tiny_files(key)
    assert files is not None and "model.safetensors" in files
    assert (tiny_module.SHIPPED_TINY_DIR / "model.safetensors").stat().st_size < 1_000_000
    record = json.loads((tiny_module.SHIPPED_TINY_DIR / tiny_module.SFT_RECORD).read_text())
    assert record["stop_split"] == "validation" and record["in_band"]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shipped default must be copied, not trained")

    monkeypatch.setattr(tiny_module, "supervised_warmup", no_training)
    path = ensure_tiny_model(task, config.model.tiny, tmp_path, progress=False)
    for name in files:
        assert (path / name).read_bytes() == (tiny_module.SHIPPED_TINY_DIR / name).read_bytes()
    model, _ = load_policy(config.model, task, cache_dir=tmp_path, progress=False)
    assert sum(p.numel() for p in model.parameters()) == record["parameters"]


def test_a_damaged_shipped_model_is_an_error_not_a_silent_retrain(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "eapo_sft.json").write_text("{}")
    manifest = tiny_module.ship_tiny_model(folder, "abc", shipped)
    assert set(manifest["sha256"]) == {"model.safetensors", "eapo_sft.json"}
    original = tiny_module.SHIPPED_TINY_DIR
    try:
        tiny_module.SHIPPED_TINY_DIR = shipped
        assert tiny_module.shipped_tiny_files("other-key") is None
        assert tiny_module.shipped_tiny_files("abc") == ["eapo_sft.json", "model.safetensors"]
        (shipped / "model.safetensors").write_bytes(b"tampered")
        with pytest.raises(ConfigError, match="SHA-256"):
            tiny_module.shipped_tiny_files("abc")
    finally:
        tiny_module.SHIPPED_TINY_DIR = original
