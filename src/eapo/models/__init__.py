"""Policies: eapo's tiny character-level model, packaged SmolLM2, any Hub id or saved folder, LoRA.

```python
from eapo.models import ModelConfig, load_policy
model, tokenizer = load_policy(ModelConfig(name="smollm2"))  # or "tiny" (pass task=), a Hub id, a folder
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eapo._lazy import lazy_exports
from eapo.models.config import FormatWarmupConfig, LoraConfig, ModelConfig, TinyConfig

if TYPE_CHECKING:
    from eapo.models.char_tokenizer import build_char_tokenizer
    from eapo.models.device import (
        autocast_context,
        autocast_enabled,
        cpu_has_fast_bf16,
        device_has_fast_bf16,
        effective_precision,
        resolve_device,
        resolve_dtype,
        resolve_rollout_dtype,
    )
    from eapo.models.format_warmup import ensure_format_warmup, format_warmup, format_warmup_summary
    from eapo.models.loading import (
        add_lora,
        default_cache_dir,
        load_policy,
        policy_location,
        record_format_warmup,
    )
    from eapo.models.pretrained import load_pretrained
    from eapo.models.smollm2 import ensure_smollm2
    from eapo.models.tiny import build_tiny_model, ensure_tiny_model, supervised_warmup

# Everything but the configs imports torch and transformers, so it loads on first use (eapo/_lazy.py).
_LAZY = {
    "build_char_tokenizer": "char_tokenizer",
    "autocast_context": "device",
    "autocast_enabled": "device",
    "cpu_has_fast_bf16": "device",
    "device_has_fast_bf16": "device",
    "effective_precision": "device",
    "resolve_device": "device",
    "resolve_dtype": "device",
    "resolve_rollout_dtype": "device",
    "ensure_format_warmup": "format_warmup",
    "format_warmup": "format_warmup",
    "format_warmup_summary": "format_warmup",
    "add_lora": "loading",
    "default_cache_dir": "loading",
    "load_policy": "loading",
    "load_pretrained": "pretrained",
    "policy_location": "loading",
    "record_format_warmup": "loading",
    "ensure_smollm2": "smollm2",
    "build_tiny_model": "tiny",
    "ensure_tiny_model": "tiny",
    "supervised_warmup": "tiny",
}


__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "FormatWarmupConfig",
    "LoraConfig",
    "ModelConfig",
    "TinyConfig",
    "add_lora",
    "autocast_context",
    "autocast_enabled",
    "build_char_tokenizer",
    "build_tiny_model",
    "cpu_has_fast_bf16",
    "default_cache_dir",
    "device_has_fast_bf16",
    "effective_precision",
    "ensure_format_warmup",
    "ensure_smollm2",
    "ensure_tiny_model",
    "format_warmup",
    "format_warmup_summary",
    "load_policy",
    "load_pretrained",
    "policy_location",
    "record_format_warmup",
    "resolve_device",
    "resolve_dtype",
    "resolve_rollout_dtype",
    "supervised_warmup",
]
