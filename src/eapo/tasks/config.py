"""Task configuration: which problems to train and evaluate on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eapo.errors import ConfigError

ANSWER_FORMATS = ("answer_tag", "boxed", "last_number")
ANSWER_FALLBACKS = ("last_number", "last_line")
VERIFIERS = ("auto", "numeric", "math_verify", "exact", "reasoning_gym")
FIELD_KEYS = ("prompt", "answer", "solution", "id")


@dataclass
class TaskConfig:
    """Where problems come from and how answers are checked.

    `source` is one of:
      - a reasoning-gym generator name (`chain_sum`, `basic_arithmetic`, `gsm_symbolic`, `countdown`, ...),
        with `params` passed to its config (e.g. `{"max_terms": 2, "max_digits": 1}`);
      - `jsonl:<path>`: one `{"prompt": ..., "answer": ...}` object a line (optional `solution`, `id`);
      - `hf:<name or path>`: a Hugging Face `datasets` data set (Hub name, a folder written by
        `save_to_disk`, or a local .json/.jsonl/.csv/.parquet file), with `fields` mapping
        `{"prompt": <column>, "answer": <column>}` and `split`.

    `num_train` and `num_eval` are the most problems each split holds. Reasoning-gym problems are drawn
    from disjoint seeds, eval first, and train drops any question that is also in eval. Data sets are
    shuffled by `seed`, `num_eval` rows are held out, and the rest (up to `num_train`, without eval
    questions) is train, unless `eval_source` / `eval_split` name the held-out rows explicitly.

    `strict_answer: true` credits only a completion whose final answer is well-formed (for `answer_tag`:
    exactly one `<answer>...</answer>`, nothing after it), with no last-number fallback.

    `verifier: auto` picks `numeric` when every gold answer is a number; otherwise `reasoning_gym` for
    reasoning-gym tasks (its own scorer, e.g. countdown's answer is an expression) and `math_verify` for
    data sets.
    """

    source: str = "chain_sum"
    params: dict[str, Any] = field(default_factory=dict)
    num_train: int = 2000
    num_eval: int = 200
    seed: int = 0
    # jsonl: and hf: only
    split: str = "train"
    fields: dict[str, str] = field(default_factory=lambda: {"prompt": "prompt", "answer": "answer"})
    eval_source: str | None = None  # a jsonl:/hf: source for the held-out problems (None: split `source`)
    eval_split: str | None = None  # hf: the split of eval_source (or of source) to evaluate on
    # How the answer is asked for and checked.
    answer_format: str = "answer_tag"  # answer_tag | boxed | last_number
    # When the requested format is absent (SmolLM2 rarely writes tags, DESIGN.md section 4):
    # last_number | last_line | None (no fallback: the completion has no answer).
    answer_fallback: str | None = "last_number"
    # Strict rewards (issue #17): credit only a well-formed final answer, given once at the end
    # (`eapo.tasks.extraction.strict_answer`); `answer_fallback` is then not used. Every run logs the strict
    # format rate (`verifier/format_rate`) whatever this says.
    strict_answer: bool = False
    verifier: str = "auto"  # auto | numeric | math_verify | exact | reasoning_gym
    verifier_timeout_s: float = 5.0
    system_prompt: str | None = None  # None: the default instruction for `answer_format`; "": none
    use_chat_template: bool | None = None  # None: use the tokenizer's chat template when it has one

    def validate(self) -> None:
        """Check the values that types alone cannot; raise ConfigError naming the field."""
        _choice("task.answer_format", self.answer_format, ANSWER_FORMATS)
        if self.answer_fallback is not None:
            _choice("task.answer_fallback", self.answer_fallback, (*ANSWER_FALLBACKS, None))
        _choice("task.verifier", self.verifier, VERIFIERS)
        if self.num_train < 1:
            raise ConfigError(f"task.num_train = {self.num_train!r} is out of range: expected >= 1")
        if self.num_eval < 1:
            raise ConfigError(f"task.num_eval = {self.num_eval!r} is out of range: expected >= 1")
        if not self.verifier_timeout_s > 0:
            raise ConfigError(
                f"task.verifier_timeout_s = {self.verifier_timeout_s!r} is out of range: expected > 0"
            )
        unknown = [key for key in self.fields if key not in FIELD_KEYS]
        if unknown:
            raise ConfigError(
                f"task.fields: unknown key {unknown[0]!r}; expected keys among {', '.join(FIELD_KEYS)}"
            )
        for key in ("prompt", "answer"):
            if key not in self.fields:
                raise ConfigError(f"task.fields: missing key {key!r} (the column that holds the {key})")
        is_dataset = self.source.startswith(("jsonl:", "hf:"))
        if not is_dataset and (self.eval_source is not None or self.eval_split is not None):
            raise ConfigError(
                f"task.eval_source / task.eval_split apply to jsonl: and hf: sources only; "
                f"reasoning-gym task {self.source!r} draws its held-out problems itself"
            )
        if self.eval_source is not None and not self.eval_source.startswith(("jsonl:", "hf:")):
            raise ConfigError(
                f"task.eval_source = {self.eval_source!r}: expected 'jsonl:<path>' or 'hf:<name or path>'"
            )


def _choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        shown = ", ".join("null" if c is None else str(c) for c in choices)
        raise ConfigError(f"{name} = {value!r} is not valid: choose from {shown}")
