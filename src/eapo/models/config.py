"""Model configuration: which policy to load and how."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoraConfig:
    """LoRA adapters via `peft` (off unless `enabled`)."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TinyConfig:
    """The character-level decoder that eapo pre-trains itself (DESIGN.md section 4).

    The defaults are sized for 2 CPU cores: a 2-layer, 64-wide Llama (138k parameters) warms up on
    configs/tiny.yaml's task in about a minute (figures in `eapo_sft.json` of each cached model).
    """

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    max_len: int = 256  # positions: prompt + completion, in characters
    sft_max_steps: int = 3000
    sft_batch_size: int = 32
    sft_lr: float = 3e-3
    sft_eval_every: int = 50
    # Held-out problems (the first ones of task.eval) sampled once each at every evaluation.
    sft_eval_problems: int = 128
    # Seed of the initial weights and of the order of training examples.
    seed: int = 0
    # SFT stops as soon as held-out sampled accuracy (T = 1.0, top-p 1.0) is inside this band, so RL
    # starts from a policy that is right sometimes and has room to improve.
    target_accuracy: tuple[float, float] = (0.10, 0.60)


@dataclass
class ModelConfig:
    """`name`: `tiny`, `smollm2`, a Hugging Face Hub id, or a local path to a saved model."""

    name: str = "tiny"
    dtype: str = "auto"  # auto | float32 | bfloat16 (auto: bf16 on CUDA, fp32 master weights on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    revision: str | None = None
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)
