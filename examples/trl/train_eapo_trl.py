"""Train with EAPO inside TRL: `EAPOTrainer` is a `trl.GRPOTrainer` with EAPO's token advantages.

    # offline smoke test on CPU: a random 2-layer Llama, a word-level tokenizer, 2 steps (~10 s)
    python examples/trl/train_eapo_trl.py --tiny

    # the same, writing an eapo run folder (metrics every step, a rollout dump every step) to analyse
    python examples/trl/train_eapo_trl.py --tiny --max-steps 4 --dump-every 1 --output-dir runs/trl-tiny
    eapo quadrants --run runs/trl-tiny && eapo report --runs runs/trl-tiny

    # a real model on GSM8K (downloads both; use a GPU, and `accelerate launch` for several)
    accelerate launch examples/trl/train_eapo_trl.py --model Qwen/Qwen2.5-Math-1.5B --max-steps 200

The settings that make it the paper's EAPO (PAPER.md §5–6) are EAPOConfig's defaults: eapo_algo="eapo",
α = 0.2, φ = 2, ε_low = 0.2, ε_high = 0.28, loss_type="dapo" (token-mean), beta = 0 (no KL).
"""

from __future__ import annotations

import argparse
import re

from datasets import Dataset

from eapo.integrations.trl import EAPOConfig, EAPOTrainer


def last_number_reward(completions: list, answer: list[str], **_: object) -> list[float]:
    """1.0 when the completion's last number equals the reference answer's (GSM8K's '#### 42'), else 0."""
    rewards = []
    for completion, reference in zip(completions, answer, strict=True):
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        target = reference.split("####")[-1].strip().replace(",", "")
        rewards.append(float(bool(numbers) and numbers[-1] == target))
    return rewards


def mentions_answer_reward(completions: list, answer: list[str], **_: object) -> list[float]:
    """1.0 when the reference answer appears anywhere among the completion's words, else 0 (the --tiny
    setting's reward: a random model's groups then mix 0s and 1s, so every quadrant has tokens)."""
    rewards = []
    for completion, reference in zip(completions, answer, strict=True):
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        rewards.append(float(reference.split("####")[-1].strip() in text.split()))
    return rewards


def tiny_setup() -> tuple[object, object, Dataset]:
    """A random LlamaForCausalLM and a WordLevel tokenizer built in memory: nothing is downloaded."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>", "+", "=", "####"] + [str(digit) for digit in range(10)]
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    pairs = [(1, 2), (3, 4), (2, 2), (1, 1)]
    dataset = Dataset.from_dict(
        {"prompt": [f"{a} + {b} =" for a, b in pairs], "answer": [f"#### {a + b}" for a, b in pairs]}
    )
    return LlamaForCausalLM(config), tokenizer, dataset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="offline smoke test with a random tiny model")
    parser.add_argument("--model", default="Qwen/Qwen2.5-Math-1.5B", help="Hub id or local path")
    parser.add_argument("--algo", default="eapo", help="eapo, grpo, forking, entro_adv, w_reinf, gtpo")
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--phi", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--output-dir", default="runs/trl-eapo", help="TRL's output_dir (the run folder)")
    parser.add_argument(
        "--per-device-batch-size",
        type=int,
        default=None,
        help="rows per process and step (default: one group, 4 with --tiny, 8 otherwise); with several "
        "processes a smaller value splits each group over processes, which EAPOTrainer shapes as a whole",
    )
    parser.add_argument(
        "--dump-every",
        type=int,
        default=0,
        help="make --output-dir an eapo run folder with a rollout dump every N steps (0 = off)",
    )
    options = parser.parse_args()

    common = {
        "output_dir": options.output_dir,
        "eapo_algo": options.algo,
        "eapo_alpha": options.alpha,
        "eapo_phi": options.phi,
        "eapo_dump_every": options.dump_every,
        "max_steps": options.max_steps,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    if options.tiny:
        model, tokenizer, dataset = tiny_setup()
        reward = mentions_answer_reward
        args = EAPOConfig(
            **common,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            num_generations=4,
            per_device_train_batch_size=options.per_device_batch_size or 4,
            max_completion_length=6,
            learning_rate=1e-3,
        )
    else:
        from datasets import load_dataset

        model, tokenizer = options.model, None
        reward = last_number_reward
        dataset = load_dataset("openai/gsm8k", "main", split="train").rename_column("question", "prompt")
        args = EAPOConfig(
            **common,
            num_generations=8,
            per_device_train_batch_size=options.per_device_batch_size or 8,
            max_completion_length=1024,
            learning_rate=1e-6,
            temperature=1.0,
            top_p=0.95,
        )
    trainer = EAPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    last = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    shares = ", ".join(f"{q} {last[f'quadrant/{q}/share']:.2f}" for q in ("PHR", "PLR", "NHR", "NLR"))
    print(f"last step: loss {last['loss']:.4f}, reward {last['reward']:.3f}, token shares: {shares}")


if __name__ == "__main__":
    main()
