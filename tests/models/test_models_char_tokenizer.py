from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from eapo.models import build_char_tokenizer
from eapo.tasks import Task, build_prompt, reference_completion

TEXTS = [
    "Calculate 5 - 3 + 10.\nAnswer:",
    "5-3=2, 2+10=12\n<answer>12</answer>",
    "  leading and trailing spaces  ",
    "tabs\tand\n\nblank lines\n",
    "ünïcödé × ÷ − 3",
]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_inverts_encode(text: str) -> None:
    tokenizer = build_char_tokenizer(TEXTS)
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text)  # one token per character, no special tokens added
    assert tokenizer.decode(ids) == text


def test_round_trip_on_task_texts(small_task: Task) -> None:
    prompts = [build_prompt(p, None, small_task.config) for p in small_task.train]
    completions = [reference_completion(p, small_task.config.answer_format) for p in small_task.train]
    tokenizer = build_char_tokenizer([*prompts, *completions])
    for text in [*prompts, *completions]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_special_tokens_and_padding() -> None:
    tokenizer = build_char_tokenizer()
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "<eos>", "<unk>")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1)
    assert tokenizer.chat_template is None
    batch = tokenizer(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [tokenizer.pad_token_id] * 2  # left padding, for generation
    assert batch["attention_mask"] == [[0, 0, 1, 1], [1, 1, 1, 1]]
    ids = tokenizer("7")["input_ids"] + [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "7"


def test_unknown_character_maps_to_unk() -> None:
    tokenizer = build_char_tokenizer()
    assert tokenizer("a€")["input_ids"][1] == tokenizer.unk_token_id


def test_vocabulary_is_deterministic() -> None:
    assert build_char_tokenizer(["zé", "a"]).get_vocab() == build_char_tokenizer(["a", "éz"]).get_vocab()


def test_saves_and_loads_with_auto_tokenizer(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer(TEXTS)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.padding_side == "left"
    for text in TEXTS:
        assert loaded.decode(loaded(text)["input_ids"]) == text
