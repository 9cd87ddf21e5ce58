"""build_prompt with and without a chat template (a tiny offline tokenizer), and reference completions."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from eapo.errors import ConfigError
from eapo.tasks import (
    DEFAULT_SYSTEM_PROMPTS,
    Problem,
    TaskConfig,
    build_prompt,
    extract_answer,
    reference_completion,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NO_SYSTEM_ROLE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<user>{{ m['content'] }}</user>{% endfor %}{% if add_generation_prompt %}<bot>{% endif %}"
)
PROBLEM = Problem(question="What is 2 + 3?", answer="5", solution="2+3=5", id="p0")


def _tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer built in memory: no download."""
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2, "What": 3, "is": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<|im_end|>")
    tokenizer.chat_template = chat_template
    return tokenizer


def test_chat_template_puts_the_instruction_in_the_system_message() -> None:
    prompt = build_prompt(PROBLEM, _tokenizer(CHATML), TaskConfig())
    assert prompt == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPTS['answer_tag']}<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_empty_system_prompt_means_no_instruction() -> None:
    prompt = build_prompt(PROBLEM, _tokenizer(CHATML), TaskConfig(system_prompt=""))
    assert prompt == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    assert build_prompt(PROBLEM, None, TaskConfig(system_prompt="")) == "What is 2 + 3?\nAnswer:"


def test_template_without_a_system_role_gets_the_instruction_in_the_user_turn() -> None:
    prompt = build_prompt(PROBLEM, _tokenizer(NO_SYSTEM_ROLE), TaskConfig(system_prompt="Be brief."))
    assert prompt == "<user>Be brief.\n\nWhat is 2 + 3?</user><bot>"


def test_plain_template_without_a_chat_template_or_when_disabled() -> None:
    expected = f"{DEFAULT_SYSTEM_PROMPTS['boxed']}\nWhat is 2 + 3?\nAnswer:"
    assert build_prompt(PROBLEM, _tokenizer(None), TaskConfig(answer_format="boxed")) == expected
    assert (
        build_prompt(PROBLEM, _tokenizer(CHATML), TaskConfig(answer_format="boxed", use_chat_template=False))
        == expected
    )
    with pytest.raises(ConfigError, match="use_chat_template"):
        build_prompt(PROBLEM, _tokenizer(None), TaskConfig(use_chat_template=True))


def test_default_instructions_show_no_concrete_answer() -> None:
    # DESIGN.md section 4: an example value in the prompt ("<answer>42</answer>") is what SmolLM2 copies.
    for instruction in DEFAULT_SYSTEM_PROMPTS.values():
        assert not any(c.isdigit() for c in instruction)


@pytest.mark.parametrize("answer_format", ["answer_tag", "boxed", "last_number"])
def test_reference_completion_extracts_to_the_answer(answer_format: str) -> None:
    for problem in (PROBLEM, Problem(question="q", answer="-7", solution=None, id="p1")):
        completion = reference_completion(problem, answer_format)
        assert extract_answer(completion, answer_format, fallback=None) == problem.answer
    assert reference_completion(PROBLEM, "answer_tag") == "2+3=5\n<answer>5</answer>"
