"""A character-level tokenizer for the tiny model, built offline with the `tokenizers` library.

One token per character (spaces and newlines included), so `decode(encode(s)) == s` for any text whose
characters are in the vocabulary. It is a `PreTrainedTokenizerFast`, so `save_pretrained` /
`AutoTokenizer.from_pretrained`, padding, `generate(stop_strings=...)` and TRL all work unchanged.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)

# Printable ASCII plus newline and tab: enough for arithmetic tasks and their prompt templates, so a prompt
# wording that changes after SFT still encodes. \r, \x0b and \x0c are left out on purpose.
BASE_CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n\t"


def build_char_tokenizer(texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A tokenizer over `BASE_CHARACTERS` plus every character that occurs in `texts`.

    Ids: `<pad>` = 0, `<eos>` = 1, `<unk>` = 2, then the characters in sorted order (deterministic for a
    given set of texts). Padding side is left, for batched generation.
    """
    characters = set(BASE_CHARACTERS)
    for text in texts:
        characters.update(text)
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for character in sorted(characters):
        vocab[character] = len(vocab)

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    # Every character is its own piece: `[\s\S]` also matches newlines, which `.` would not.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # Join pieces without separators (WordLevel would otherwise decode with spaces between tokens).
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )
