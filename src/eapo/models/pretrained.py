"""Loading a causal LM and its tokenizer from a folder or a Hub id, with errors that name the location.

Below both `eapo.models.loading` (which picks the location: tiny, SmolLM2, a folder, a Hub id, or the format
warm-up's cached fine-tune) and `eapo.models.format_warmup` (which loads the base model it fine-tunes), so
neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from eapo.errors import ModelLoadError

__all__ = ["hub_is_offline", "load_pretrained", "prepare_tokenizer"]

HUB_TIMEOUT_S = 3.0  # a Hub id that is not cached: how long to wait for the Hub before saying so


def hub_is_offline(name: str, revision: str | None = None) -> bool:
    """Whether Hub id `name` must be loaded from the local cache only (it is cached, and the Hub is
    unreachable or HF_HUB_OFFLINE is set). Raises ModelLoadError at once, with what to do, when the id is
    not cached and the Hub cannot be reached: without this, transformers retries for about a minute."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)
    except ValueError:  # not a valid repo id: from_pretrained reports it
        return False
    offline_env = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    reachable = False
    if not offline_env:
        endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        try:
            port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
            socket.create_connection((endpoint.hostname or "huggingface.co", port), HUB_TIMEOUT_S).close()
            reachable = True
        except (OSError, ValueError):
            reachable = False
    if reachable:
        return False
    if cached:
        return True
    why = "HF_HUB_OFFLINE is set" if offline_env else f"the Hub did not answer within {HUB_TIMEOUT_S:g} s"
    raise ModelLoadError(
        f"model {name!r} is not a local folder nor in the local Hugging Face cache, and {why}. Working "
        f"offline: download it on a connected machine (`huggingface-cli download {name}`) and copy the "
        "cache (~/.cache/huggingface), or save it with save_pretrained and give that folder"
    )


def load_pretrained(
    location: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`from_pretrained` for model and tokenizer, with errors that name the location."""
    from safetensors import SafetensorError

    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if not Path(location).exists() and hub_is_offline(str(location), revision):
        kwargs["local_files_only"] = True  # cached: no network round trips (and no minute of retries)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    # SafetensorError: a truncated or corrupt weights file; RuntimeError: weights whose shapes differ
    # from config.json.
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
        raise ModelLoadError(
            f"could not load a causal LM and tokenizer from {str(location)!r}: {error}. Expected a folder "
            "written by save_pretrained or a Hugging Face Hub id that is in the local cache (eapo downloads "
            "nothing) or reachable online."
        ) from error
    prepare_tokenizer(tokenizer, model)
    return model, tokenizer


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None = None) -> None:
    """Give the tokenizer a pad token (its eos when missing) and left padding, and tell the model."""
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(
            f"tokenizer {tokenizer.name_or_path!r} has no eos token; eapo needs one to end responses (and "
            "to pad, when there is no pad token): set eos_token in its tokenizer_config.json"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
