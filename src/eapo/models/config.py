"""Model configuration: which policy to load and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from eapo.errors import ConfigError


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

    def validate(self) -> None:
        """Range checks, ConfigError naming the field (`eapo train`'s config check and the model builder)."""

        def require(ok: bool, name: str, value: object, expected: str) -> None:
            if not ok:
                raise ConfigError(f"model.tiny.{name} = {value!r} is out of range: expected {expected}")

        for name in (
            "n_layer",
            "n_embd",
            "n_head",
            "max_len",
            "sft_max_steps",
            "sft_batch_size",
            "sft_eval_every",
        ):
            require(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require(self.sft_eval_problems >= 0, "sft_eval_problems", self.sft_eval_problems, ">= 0")
        require(self.sft_lr > 0, "sft_lr", self.sft_lr, "> 0")
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head, f"a divisor of n_embd ({self.n_embd})")
        low, high = self.target_accuracy
        require(0 <= low <= high <= 1, "target_accuracy", list(self.target_accuracy), "0 <= low <= high <= 1")


@dataclass
class FormatWarmupConfig:
    """A supervised format warm-up for pretrained models (issue #17, `eapo.models.format_warmup`).

    Before RL, the policy is fine-tuned on worked solutions that end in the well-formed answer
    (`eapo.tasks.reference_completion`) for `num_problems` problems of a split disjoint from train, eval
    and validation (`eapo.tasks.splits`). Every `eval_every` steps (and before the first), the first
    `eval_problems` validation problems are sampled `eval_samples` times at `temperature` / `top_p` (set
    them to the run's `sampling` values: the config check insists on the temperature) and the warm-up stops
    at the first strict format rate >= `target_format_rate`; at `max_steps` without it, the best weights
    are kept and a warning says so. The result is cached by a hash of model, task and these settings, so
    every arm and seed of a study starts from the same weights.
    """

    enabled: bool = False
    max_steps: int = 200
    lr: float = 2e-5
    batch_size: int = 8
    eval_every: int = 20
    target_format_rate: float = 0.95
    num_problems: int = 512  # warm-up problems (worked solutions), outside train, eval and validation
    # The validation split kept out of the warm-up: eapo compare's default --val-problems, so the study's
    # validation split and the warm-up never share a question.
    validation_problems: int = 200
    eval_problems: int = 64  # the first N validation problems, sampled by the stop rule
    eval_samples: int = 4  # samples per problem at every stop-rule evaluation
    temperature: float = 1.0  # the training temperature (sampling.temperature)
    top_p: float = 0.95
    seed: int = 0  # order of the training examples and the stop rule's sampling

    def validate(self, training_temperature: float | None = None) -> None:
        """Range checks; raise ConfigError naming the field. With `training_temperature`, the stop rule
        must sample at it."""
        for name in (
            "max_steps",
            "batch_size",
            "eval_every",
            "num_problems",
            "validation_problems",
            "eval_problems",
            "eval_samples",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"model.format_warmup.{name} = {value!r} is out of range: expected >= 1")
        if self.eval_problems > self.validation_problems:
            raise ConfigError(
                f"model.format_warmup.eval_problems = {self.eval_problems} is out of range: expected <= "
                f"model.format_warmup.validation_problems ({self.validation_problems})"
            )
        if not self.lr > 0:
            raise ConfigError(f"model.format_warmup.lr = {self.lr!r} is out of range: expected > 0")
        if not 0 < self.target_format_rate <= 1:
            raise ConfigError(
                f"model.format_warmup.target_format_rate = {self.target_format_rate!r} is out of range: "
                "expected in (0, 1]"
            )
        if not self.temperature >= 0 or not 0 < self.top_p <= 1:
            raise ConfigError(
                f"model.format_warmup.temperature = {self.temperature!r} / top_p = {self.top_p!r}: expected "
                "temperature >= 0 and top_p in (0, 1]"
            )
        if self.enabled and training_temperature is not None and self.temperature != training_temperature:
            raise ConfigError(
                f"model.format_warmup.temperature = {self.temperature!r} differs from sampling.temperature = "
                f"{training_temperature!r}: the warm-up's stop rule samples at the training temperature; "
                "set them equal"
            )


@dataclass
class ModelConfig:
    """`name`: `tiny`, `smollm2`, a Hugging Face Hub id, or a local path to a saved model."""

    name: str = "tiny"
    dtype: str = "auto"  # auto | float32 | bfloat16 (auto: bf16 on CUDA, fp32 master weights on CPU)
    # Weights that sample rollouts: auto | float32 | bfloat16. auto: a bf16 copy (refreshed every step)
    # where `dtype` is not float32 and the device has bf16 matrix units, else the training weights.
    rollout_dtype: str = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    revision: str | None = None
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    format_warmup: FormatWarmupConfig = field(default_factory=FormatWarmupConfig)
