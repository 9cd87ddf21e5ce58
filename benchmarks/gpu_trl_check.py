"""One real EAPO step through the TRL adapter with a tiny random Llama, and its GRPO loss against TRL's own.

For `gpu_check.sh` (issue #18 item 4): on CUDA in bf16 (TRL's `bf16=True`), on CPU in fp32 (`--device cpu`,
the setting of tests/integrations/test_trl.py, whose tolerance 1e-6 it keeps). The loss comparison feeds one
micro-batch of 2 groups with ragged completions and perturbed old log-probs to `GRPOTrainer._compute_loss`
and to the adapter's `_compute_loss` with `eapo_algo="grpo"` (token-broadcast advantages), under the
trainer's autocast; both run the same forward, so they should agree to bf16 rounding (tolerance 1e-3).

    python benchmarks/gpu_trl_check.py --device cuda --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GROUP = 4


def tiny_model_and_tokenizer() -> tuple[Any, Any]:
    """The integration tests' random 2-layer Llama (tests/integrations/random_llama.py), built offline."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integrations"))
    from random_llama import build_random_llama  # type: ignore[import-not-found]  # on the path above

    return build_random_llama()


def count_ones(completions: list[str], **_: object) -> list[float]:
    return [float(completion.split().count("1")) for completion in completions]


def make_trainer(out: str, device: str, algo: str, max_steps: int) -> Any:
    from datasets import Dataset

    from eapo.integrations.trl import EAPOConfig, EAPOTrainer

    model, tokenizer = tiny_model_and_tokenizer()
    cuda = device == "cuda"
    args = EAPOConfig(
        output_dir=out,
        use_cpu=not cuda,
        bf16=cuda,
        report_to="none",
        num_generations=GROUP,
        per_device_train_batch_size=GROUP,
        max_completion_length=6,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        gradient_checkpointing=False,
        eapo_algo=algo,
    )
    dataset = Dataset.from_dict({"prompt": ["1 + 2 =", "3 + 4 =", "a b", "c d"]})
    return EAPOTrainer(
        model=model, reward_funcs=count_ones, args=args, train_dataset=dataset, processing_class=tokenizer
    )


def loss_inputs(trainer: Any) -> dict[str, Any]:
    """The micro-batch of tests/integrations/test_trl.py: 2 groups, ragged completions, perturbed old
    log-probs."""
    import torch

    from eapo.core import token_logprobs_and_entropy

    generator = torch.Generator().manual_seed(0)
    rows, prompt_len, completion_len = 2 * GROUP, 3, 6
    vocab = trainer.model.config.vocab_size
    prompt_ids = torch.randint(3, vocab, (rows, prompt_len), generator=generator)
    completion_ids = torch.randint(3, vocab, (rows, completion_len), generator=generator)
    lengths = torch.randint(1, completion_len + 1, (rows,), generator=generator)
    completion_mask = (torch.arange(completion_len)[None, :] < lengths[:, None]).long()
    device = trainer.model.device
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1).to(device)
    with torch.no_grad():
        logits = trainer.model(input_ids=input_ids).logits[:, prompt_len - 1 : -1].float()
    logprobs, _ = token_logprobs_and_entropy(logits, completion_ids.to(device), completion_mask.to(device))
    noise = (0.3 * torch.randn(logprobs.shape, generator=generator)).to(device)
    return {
        "prompt_ids": prompt_ids.to(device),
        "prompt_mask": torch.ones_like(prompt_ids).to(device),
        "completion_ids": completion_ids.to(device),
        "completion_mask": completion_mask.to(device),
        "advantages": torch.randn(rows, generator=generator).to(device),
        "old_per_token_logps": logprobs + noise,
        "num_items_in_batch": completion_mask.sum().float().to(device),
    }


def run(device: str) -> dict[str, Any]:
    import torch
    from trl import GRPOTrainer

    from eapo.core import token_advantages

    result: dict[str, Any] = {"device": device, "precision": "bf16" if device == "cuda" else "fp32"}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer = make_trainer(tmp, device, "eapo", max_steps=1)
        trainer.train()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        result["eapo_step"] = {
            "seconds": round(time.perf_counter() - start, 2),
            "loss": losses[-1] if losses else None,
            "finite": bool(losses) and all(math.isfinite(x) for x in losses),
            "quadrant_keys": sorted(
                k for e in trainer.state.log_history for k in e if k.startswith("quadrant/")
            )[:8],
        }
        trainer = make_trainer(tmp, device, "grpo", max_steps=1)
        trainer.loss_type = "dapo"
        trainer.current_gradient_accumulation_steps = 1
        trainer.model.train()
        inputs = loss_inputs(trainer)
        with trainer.compute_loss_context_manager():
            trl_loss = float(GRPOTrainer._compute_loss(trainer, trainer.model, dict(inputs)).detach())
            eapo_inputs = dict(
                inputs, advantages=token_advantages(inputs["advantages"], inputs["completion_mask"])
            )
            eapo_loss = float(trainer._compute_loss(trainer.model, eapo_inputs).detach())
    tolerance = 1e-3 if device == "cuda" else 1e-6
    result["grpo_vs_trl_loss"] = {
        "trl": trl_loss,
        "eapo": eapo_loss,
        "abs_diff": abs(trl_loss - eapo_loss),
        "tolerance": tolerance,
        "ok": abs(trl_loss - eapo_loss) <= tolerance,
    }
    result["ok"] = result["eapo_step"]["finite"] and result["grpo_vs_trl_loss"]["ok"]
    result["torch"] = torch.__version__
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    args = parser.parse_args()
    result = run(args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
