"""`eapo gradients --cosine`: per-algorithm parameter gradients and one-step updates against GRPO's, on one
rollout batch of the smoke model, checked against exact properties (not just GRPO against itself)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
import torch

from eapo.analysis.cosine_batch import PARTS, batch_from_rewards, sample_batch, shaped_advantages
from eapo.analysis.gradient_cosine import (
    adamw_delta,
    algorithm_gradients,
    compare,
    gradient_cosine,
    parse_algorithm,
)
from eapo.errors import ConfigError
from eapo.train.algorithms import AlgoConfig, resolve_algorithm
from eapo.train.config import load_config


@pytest.fixture(scope="module")
def smoke() -> tuple[Any, Any, Any, Any]:
    from eapo.models import load_policy
    from eapo.tasks import load_task

    config = load_config("smoke", ["--train.micro_batch_rows", "5"])  # micro-batches that split groups
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    return model, tokenizer, task, config


@pytest.fixture(scope="module")
def batch(smoke: tuple[Any, Any, Any, Any]) -> Any:
    """4 prompts x G = 4 sampled by the smoke model, with rewards fixed by hand so that every group is
    mixed (the smoke model rarely answers right) and all four quadrants have tokens."""
    model, tokenizer, task, config = smoke
    sampled = sample_batch(model, tokenizer, task, config, task.train[:4], seed=0)
    correct = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1])
    return batch_from_rewards(sampled.rollout, correct, sampled.entropy, sampled.group_size)


def _gradients(
    smoke: tuple[Any, Any, Any, Any], batch: Any, label: str | AlgoConfig
) -> dict[str, torch.Tensor]:
    model, _, _, config = smoke
    algorithm = resolve_algorithm(parse_algorithm(label) if isinstance(label, str) else label)
    shaped = shaped_advantages(algorithm, batch, config.sampling.max_new_tokens)
    return algorithm_gradients(model, batch, algorithm, shaped, config)


def test_the_batch_has_every_quadrant(batch: Any) -> None:
    for part in PARTS[:4]:
        assert int(batch.parts[part].sum()) > 0, part


def test_eapo_at_alpha_zero_has_grpos_gradient_and_update(smoke: Any, batch: Any) -> None:
    grpo, eapo0 = _gradients(smoke, batch, "grpo"), _gradients(smoke, batch, "eapo:alpha=0")
    params = torch.cat([p.detach().reshape(-1) for p in smoke[0].parameters()])
    for part in PARTS[:4]:
        assert float(grpo[part].norm()) > 0, part
        c = compare(eapo0[part], grpo[part])
        assert c["cosine"] == pytest.approx(1.0, abs=1e-6) and c["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
        step = {"lr": 1e-3, "weight_decay": 0.0, "max_grad_norm": 1.0}
        u = compare(adamw_delta(params, eapo0[part], **step), adamw_delta(params, grpo[part], **step))
        assert u["cosine"] == pytest.approx(1.0, abs=1e-6) and u["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    # EAPO at its defaults is not GRPO: it moves each token's |Â| by up to ±10%.
    eapo = _gradients(smoke, batch, "eapo")
    cosine = compare(eapo["PHR"], grpo["PHR"])["cosine"]
    assert cosine is not None and cosine < 1 - 1e-7


def test_the_parts_sum_to_the_trainers_whole_batch_gradient(smoke: Any, batch: Any) -> None:
    """Σ parts equals one backward of the full token-mean loss over the whole batch."""
    from eapo.core import policy_loss, token_logprobs_and_entropy
    from eapo.rollout import response_logits

    model, _, _, config = smoke
    parts = _gradients(smoke, batch, "eapo")
    algorithm = resolve_algorithm(AlgoConfig(name="eapo"))
    shaped = shaped_advantages(algorithm, batch, config.sampling.max_new_tokens)
    r = batch.rollout
    informative = batch.correct.view(-1, 4).std(dim=1) > 0
    mask = r.response_mask & informative.repeat_interleave(4)[:, None]
    model.zero_grad(set_to_none=True)
    logits = response_logits(model, r.sequences, r.attention_mask, r.prompt_length)
    logprobs, _ = token_logprobs_and_entropy(logits, r.response_ids, mask)
    loss, _, _ = policy_loss(logprobs, logprobs.detach(), shaped, mask)
    loss.backward()
    direct = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(parts["all"], direct, rtol=1e-4, atol=1e-7)
    summed = sum((parts[q] for q in PARTS[:4]), torch.zeros_like(parts["all"]))
    assert torch.allclose(summed, parts["all"], rtol=1e-5, atol=1e-8)
    assert "ZERO" not in parts  # Â = 0 and no entropy term: nothing can flow there, so it is skipped
    # Unsplit, one backward pass gives the same whole gradient.
    algorithm = resolve_algorithm(AlgoConfig(name="eapo"))
    unsplit = algorithm_gradients(model, batch, algorithm, shaped, config, split=False)
    assert list(unsplit) == ["all"] and torch.allclose(unsplit["all"], parts["all"], rtol=1e-5, atol=1e-8)


def test_a_loss_with_random_draws_still_splits_into_parts_that_sum_to_it(smoke: Any, batch: Any) -> None:
    """Clip-Cov picks random tokens: every part must see the same pick, as the trainer's one loss does."""
    model, _, _, config = smoke
    algorithm = resolve_algorithm(AlgoConfig(name="clip_cov"))
    shaped = shaped_advantages(algorithm, batch, config.sampling.max_new_tokens)
    torch.manual_seed(3)
    parts = algorithm_gradients(model, batch, algorithm, shaped, config)
    torch.manual_seed(3)
    whole = algorithm_gradients(model, batch, algorithm, shaped, config, split=False)["all"]
    assert torch.allclose(parts["all"], whole, rtol=1e-5, atol=1e-8)


def test_isolating_a_quadrant_zeroes_the_others_and_keeps_its_own(smoke: Any, batch: Any) -> None:
    grpo = _gradients(smoke, batch, "grpo")
    isolate = _gradients(smoke, batch, "quadrant")  # the preset: isolate PHR
    for part in ("PLR", "NHR", "NLR", "ZERO"):
        assert part not in isolate or float(isolate[part].norm()) == 0.0, part
    c = compare(isolate["PHR"], grpo["PHR"])
    assert c["cosine"] == pytest.approx(1.0, abs=1e-6) and c["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    drop_negative = AlgoConfig(name="quadrant", shaper_params={"mode": "drop", "quadrants": ["NHR", "NLR"]})
    drop = _gradients(smoke, batch, drop_negative)
    assert float(drop["NHR"].norm()) == 0.0 and float(drop["NLR"].norm()) == 0.0
    assert compare(drop["PLR"], grpo["PLR"])["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_forking_and_w_reinf_point_elsewhere(smoke: Any, batch: Any) -> None:
    grpo = _gradients(smoke, batch, "grpo")
    forking = _gradients(smoke, batch, "forking")
    cosine = compare(forking["all"], grpo["all"])["cosine"]
    assert cosine is not None and cosine < 0.99
    # W-REINFORCE scales positive advantages by 0.1: positive parts shrink exactly 10x, negative stay.
    w = _gradients(smoke, batch, "w_reinf")
    assert compare(w["PHR"], grpo["PHR"])["norm_ratio"] == pytest.approx(0.1, rel=1e-5)
    assert compare(w["NLR"], grpo["NLR"])["norm_ratio"] == pytest.approx(1.0, rel=1e-5)


@pytest.fixture
def crc_rewards(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier replaced by the parity of each completion's CRC-32: the smoke model is almost never
    right, so whether its groups hold a correct answer would depend on the random stream; the tests that
    fill a batch with mixed groups check the filling, not the model."""
    import eapo.tasks

    real = eapo.tasks.score_completions

    def scored(completions: list[str], *args: Any, **kwargs: Any) -> Any:
        result = real(completions, *args, **kwargs)
        result.rewards = [float(zlib.crc32(c.encode()) % 2) for c in completions]
        return result

    monkeypatch.setattr(eapo.tasks, "score_completions", scored)


@pytest.mark.usefixtures("crc_rewards")
def test_an_informative_batch_holds_only_groups_with_mixed_rewards(smoke: Any) -> None:
    model, tokenizer, task, config = smoke
    filled = sample_batch(model, tokenizer, task, config, task.train[:32], seed=0, informative_groups=2)
    groups = filled.correct.view(-1, 4)
    assert 1 <= groups.shape[0] <= 2 and bool((groups.std(dim=1) > 0).all())
    assert filled.prompts_sampled == 2 * filled.rounds and filled.rollout.sequences.shape[0] == 4 * len(
        groups
    )
    assert int(filled.parts["ZERO"].sum()) == 0


def test_adamw_delta_is_one_adamw_step_of_the_whole_model() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model(torch.randn(5, 3)).square().sum().backward()
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    grads = []
    for p in model.parameters():
        assert p.grad is not None
        grads.append(p.grad.reshape(-1).clone())
    grad = torch.cat(grads)
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), 0.5)
    torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1).step()
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    delta = adamw_delta(before, grad, lr=0.01, weight_decay=0.1, max_grad_norm=0.5)
    assert torch.allclose(delta, after - before, atol=1e-7)


@pytest.mark.usefixtures("crc_rewards")
def test_the_command_reports_every_algorithm_and_the_control(smoke: Any, tmp_path: Any) -> None:
    model, tokenizer, task, config = smoke
    result = gradient_cosine(
        model,
        tokenizer,
        task,
        config,
        algorithms=["eapo", "dapo", "forking"],
        split_algorithms=["eapo"],
        num_prompts=4,
        seed=0,
        progress=False,
    )
    assert list(result["algorithms"]) == ["grpo", "eapo", "dapo", "forking"]
    for entry in result["algorithms"].values():
        assert set(entry["gradient"]) == {"all", *PARTS} and set(entry["update"]) == {"all", *PARTS}
    assert result["algorithms"]["forking"]["gradient"]["PHR"] is None  # not split: whole gradient only
    assert result["algorithms"]["eapo"]["gradient"]["PHR"] is not None
    assert set(result["control"]["gradient"]) == {"all", *PARTS}
    assert sum(result["batch"]["part_shares"].values()) == pytest.approx(1.0)
    json.dumps(result)  # JSON-ready as returned


def test_algorithm_labels_are_checked() -> None:
    assert parse_algorithm("eapo:alpha=1:phi=1") == AlgoConfig(name="eapo", alpha=1, phi=1)
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        parse_algorithm("eapo:beta=1")


@pytest.mark.usefixtures("crc_rewards")
def test_a_stopped_cosine_resumes_from_its_journal_with_the_same_result(
    smoke: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after two algorithms, the rerun computes only GRPO (the reference) and the rest, and
    returns what an uninterrupted run does; a journal of another seed is not mixed in."""
    from eapo.analysis import gradient_cosine as module

    model, tokenizer, task, config = smoke
    kwargs: dict[str, Any] = dict(
        algorithms=["eapo", "dapo", "w_reinf"], num_prompts=4, seed=0, progress=False
    )

    def run(**extra: Any) -> dict[str, Any]:
        torch.manual_seed(0)
        return gradient_cosine(model, tokenizer, task, config, **kwargs, **extra)

    whole = run()
    journal = tmp_path / "cosine.journal.jsonl"
    real_append = module.append_row
    written: list[str] = []

    def stop_after_two(path: Any, row: dict[str, Any]) -> None:
        if len(written) == 2:
            raise KeyboardInterrupt
        real_append(path, row)
        written.append(row["name"])

    monkeypatch.setattr(module, "append_row", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        run(journal=journal)
    assert written == ["grpo", "eapo"]
    monkeypatch.setattr(module, "append_row", real_append)
    computed = []
    real_gradients = module.algorithm_gradients

    def counted(model: Any, batch: Any, algorithm: Any, *args: Any, **kw: Any) -> Any:
        computed.append(algorithm.name)
        return real_gradients(model, batch, algorithm, *args, **kw)

    monkeypatch.setattr(module, "algorithm_gradients", counted)
    resumed = run(journal=journal)
    assert computed == ["grpo", "dapo", "w_reinf", "grpo"]  # eapo from the journal; the last is the control
    assert resumed["algorithms"] == json.loads(json.dumps(whole["algorithms"]))
    assert resumed["control"] == json.loads(json.dumps(whole["control"]))
    computed.clear()
    run(journal=journal, journal_context={"cpu": "another"})  # another machine: everything again
    assert computed == ["grpo", "eapo", "dapo", "w_reinf", "grpo"]
