"""Prompts: the instruction for the answer format, the chat template or a short plain template.

The default instructions show the answer format without a concrete value: DESIGN.md section 4 measured
that a worked example in the prompt ("e.g. <answer>42</answer>") makes SmolLM2-135M answer 42. They go in
the system message, which worked better there than appending them to the user turn.
"""

from __future__ import annotations

from typing import Any

from eapo.errors import ConfigError
from eapo.tasks.config import TaskConfig
from eapo.tasks.extraction import last_number
from eapo.tasks.problem import Problem

DEFAULT_SYSTEM_PROMPTS = {
    "answer_tag": (
        "Solve the problem. Put only the final answer inside <answer></answer> tags at the end of your reply."
    ),
    "boxed": "Solve the problem. Put only the final answer inside \\boxed{} at the end of your reply.",
    "last_number": "Solve the problem. End your reply with the final answer.",
}
# The plain template (tokenizers without a chat template, e.g. eapo's character-level tiny model, which
# sees every character of it): optional system line, the question, and this answer lead.
PLAIN_ANSWER_LEAD = "Answer:"


def system_prompt(config: TaskConfig) -> str:
    """The instruction for `config`: `system_prompt` if set ("" means none), else the format's default."""
    if config.system_prompt is not None:
        return config.system_prompt
    return DEFAULT_SYSTEM_PROMPTS[config.answer_format]


def build_prompt(problem: Problem, tokenizer: Any, task_config: TaskConfig) -> str:
    """The text the policy continues.

    With a tokenizer that has a chat template (and `use_chat_template` not False): system message (if
    any) + user turn, rendered with `add_generation_prompt=True`; a template that rejects the system role
    gets the instruction at the head of the user turn. Otherwise the plain template:
    "<system>\\n<question>\\nAnswer:" (no system line when the instruction is empty).
    """
    system = system_prompt(task_config)
    has_template = tokenizer is not None and getattr(tokenizer, "chat_template", None) is not None
    if task_config.use_chat_template and not has_template:
        raise ConfigError("task.use_chat_template = true, but the tokenizer has no chat template")
    if has_template and task_config.use_chat_template is not False:
        messages = [{"role": "user", "content": problem.question}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        try:
            return _render(tokenizer, messages)
        except Exception as err:  # jinja2's TemplateError: e.g. "System role not supported"
            if not system:
                raise
            merged = [{"role": "user", "content": f"{system}\n\n{problem.question}"}]
            try:
                return _render(tokenizer, merged)
            except Exception:
                raise err from None
    head = f"{system}\n" if system else ""
    return f"{head}{problem.question}\n{PLAIN_ANSWER_LEAD}"


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(text, str):  # some tokenizer versions return a list for a single conversation
        text = text[0]
    return text


def reference_completion(problem: Problem, answer_format: str) -> str:
    """The completion a supervised warm-up teaches: the worked steps (if any), then the answer in format.

    `extract_answer(reference_completion(p, f), f)` is `p.answer`.
    """
    if answer_format == "answer_tag":
        final = f"<answer>{problem.answer}</answer>"
    elif answer_format == "boxed":
        final = f"\\boxed{{{problem.answer}}}"
    elif answer_format == "last_number":
        final = problem.answer
    else:
        raise ValueError(f"unknown answer_format {answer_format!r}")
    if problem.solution is None:
        return final
    if answer_format == "last_number" and last_number(problem.solution) == problem.answer:
        return problem.solution  # reasoning-gym solutions end in the answer already
    return f"{problem.solution}\n{final}"
