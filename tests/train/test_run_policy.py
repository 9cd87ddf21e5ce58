"""One path from a config to a loaded policy (`eapo.train.run_policy`), used by every command."""

from __future__ import annotations

import torch

from eapo.train.config import load_config
from eapo.train.run_policy import load_run_policy, sampling_settings


def test_eval_sampling_takes_eval_temperature_and_rollout_limits() -> None:
    config = load_config("smoke", ["--eval.temperature", "0.6", "--sampling.temperature", "1.3"])
    config.sampling.stop_strings = ["</answer>"]
    evaluation = sampling_settings(config, "eval")
    assert evaluation.temperature == 0.6
    assert evaluation.top_p == config.eval.top_p
    assert evaluation.max_new_tokens == config.sampling.max_new_tokens  # eval.max_new_tokens unset
    assert evaluation.stop_strings == ["</answer>"]
    training = sampling_settings(config, "train")
    assert training.temperature == 1.3
    training.stop_strings.append("x")  # a copy: the config's list is not shared
    assert config.sampling.stop_strings == ["</answer>"]
    config.eval.max_new_tokens = 7
    assert sampling_settings(config, "eval").max_new_tokens == 7
    config.sampling.top_p_candidates = 0  # transformers' warpers for rollouts, and so for evaluation
    assert sampling_settings(config, "eval").top_p_candidates == 0
    config.sampling.phase_tokens = 8  # and the phases
    assert sampling_settings(config, "eval").phase_tokens == 8


def test_load_run_policy_loads_task_model_and_autocast() -> None:
    config = load_config("smoke")
    loaded = load_run_policy(config, progress=False, eval_mode=True)
    assert loaded.task.config.source == config.task.source
    assert not loaded.model.training
    assert loaded.device == torch.device("cpu")
    with loaded.autocast():  # fp32 on this CPU setting: autocast stays off
        assert not torch.is_autocast_enabled("cpu")
    # The same task object is reused when given (the trainer's reference model).
    again = load_run_policy(config, task=loaded.task, progress=False)
    assert again.task is loaded.task
