"""The supervised format warm-up (issue #17 item 3) on the smoke setting, end to end: it raises the strict
format rate, is cached by model + task + settings, reused without training, and recorded in the run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from eapo.errors import ConfigError
from eapo.models import FormatWarmupConfig, load_policy
from eapo.models import format_warmup as format_warmup_module
from eapo.models.format_warmup import RECORD, format_warmup_key, read_format_warmup_record
from eapo.models.loading import policy_location
from eapo.tasks import load_task
from eapo.train.config import load_config

# Seconds on a CPU: the smoke tiny model (40 SFT steps on the train split, so it rarely closes the tag at
# T = 1), then a format warm-up of up to 80 steps stopped on 16 validation problems x 2 samples.
WARMUP = {
    "enabled": True,
    "max_steps": 80,
    "lr": 3e-3,
    "batch_size": 16,
    "eval_every": 10,
    "target_format_rate": 0.95,
    "num_problems": 128,
    "validation_problems": 32,
    "eval_problems": 16,
    "eval_samples": 2,
}
OVERRIDES = {"task": {"strict_answer": True}, "model": {"format_warmup": WARMUP}, "train": {"steps": 1}}


def test_warmup_raises_the_format_rate_is_cached_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config("smoke", OVERRIDES)
    task = load_task(config.task)
    monkeypatch.setenv("EAPO_CACHE_DIR", str(tmp_path / "cache"))

    load_policy(config.model, task, progress=False)
    folder, _ = policy_location(config.model, task, progress=False)
    record = read_format_warmup_record(Path(folder))
    assert Path(folder).parent.name == "format_warmup" and record["cache_key"] in Path(folder).name
    assert list(Path(folder).glob("*.safetensors"))
    assert record["reached_target"] or record["format_rate"] > record["before_format_rate"]
    assert record["format_rate"] >= record["before_format_rate"] + 0.2  # measured here: 0 -> ~0.5-1
    assert record["history"][0]["step"] == 0 and record["steps"] <= WARMUP["max_steps"]
    assert (
        record["stop_rule"] | {"problems": 16, "samples_per_problem": 2, "split": "validation"}
        == (record["stop_rule"])
    )

    # The second time (another arm or seed of a study), the cached weights load without training.
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the format warm-up ran again instead of using its cache")

    monkeypatch.setattr(format_warmup_module, "format_warmup", no_training)
    load_policy(config.model, task, progress=False)

    # A run records it: format_warmup.json in the run folder, and the strict format rate every step.
    from eapo.train.trainer import train

    run_config = dataclasses.replace(
        config, run=dataclasses.replace(config.run, output_dir=str(tmp_path / "runs"), name="fw")
    )
    result = train(run_config, progress=False)
    assert json.loads((result.run_dir / RECORD).read_text()) == record
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [row["verifier/format_rate"] for row in rows if "verifier/format_rate" in row]
    assert rates and all(0.0 <= rate <= 1.0 for rate in rates)

    # The run's checkpoint is evaluated and probed as trained: loading it never warms it up again (the
    # patched warm-up above raises if called), by --run, by --model on the checkpoint, and step by step.
    from eapo.analysis.gradients import _policy_for
    from eapo.train.checkpoint import latest_checkpoint
    from eapo.train.evaluate import resolve_eval_target
    from eapo.train.run_policy import load_run_policy

    checkpoint = latest_checkpoint(result.run_dir)
    for run, model in ((result.run_dir, None), (None, str(checkpoint))):
        eval_config, _ = resolve_eval_target(run, model, None, None)
        assert not eval_config.model.format_warmup.enabled
        load_run_policy(eval_config, progress=False)
    assert _policy_for(result.run_dir, 1, {}) is not None


def test_the_cache_key_follows_model_task_and_settings() -> None:
    config = load_config("smoke", OVERRIDES)
    task = load_task(config.task)
    base = {"name": "smollm2", "folder": "smollm2-135m-instruct-v1"}
    warmup = config.model.format_warmup
    key = format_warmup_key(base, task, warmup, "auto")
    assert key == format_warmup_key(base, task, dataclasses.replace(warmup), "auto")
    assert key != format_warmup_key(base, task, dataclasses.replace(warmup, lr=1e-4), "auto")
    assert key != format_warmup_key({**base, "folder": "other"}, task, warmup, "auto")
    other_task = load_task(dataclasses.replace(config.task, seed=1))
    assert key != format_warmup_key(base, other_task, warmup, "auto")
    # `enabled` is not a setting of the result: turning it off and on keeps the cache.
    assert key == format_warmup_key(base, task, dataclasses.replace(warmup, enabled=False), "auto")


def test_settings_are_checked_at_the_edge() -> None:
    with pytest.raises(ConfigError, match="differs from sampling"):
        load_config("smoke", {"model": {"format_warmup": {"enabled": True, "temperature": 0.7}}})
    with pytest.raises(ConfigError, match=r"model.format_warmup.eval_problems = 300"):
        load_config("smoke", {"model": {"format_warmup": {"eval_problems": 300}}})
    with pytest.raises(ConfigError, match=r"model.format_warmup.target_format_rate"):
        FormatWarmupConfig(target_format_rate=1.5).validate()
    with pytest.raises(ConfigError, match="pass the task"):
        load_policy(
            load_config("smoke", {"model": {"name": "smollm2", "format_warmup": {"enabled": True}}}).model
        )
