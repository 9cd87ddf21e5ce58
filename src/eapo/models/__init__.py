"""Policies: eapo's tiny character-level model, packaged SmolLM2, any Hub id or saved folder, LoRA.

```python
from eapo.models import ModelConfig, load_policy
model, tokenizer = load_policy(ModelConfig(name="smollm2"))  # or "tiny" (pass task=), a Hub id, a folder
```
"""

from __future__ import annotations

from eapo.models.char_tokenizer import build_char_tokenizer
from eapo.models.config import LoraConfig, ModelConfig, TinyConfig
from eapo.models.device import autocast_context, cpu_has_fast_bf16, resolve_device, resolve_dtype
from eapo.models.loading import add_lora, default_cache_dir, load_policy, load_pretrained
from eapo.models.smollm2 import ensure_smollm2
from eapo.models.tiny import build_tiny_model, ensure_tiny_model, supervised_warmup

__all__ = [
    "LoraConfig",
    "ModelConfig",
    "TinyConfig",
    "add_lora",
    "autocast_context",
    "build_char_tokenizer",
    "build_tiny_model",
    "cpu_has_fast_bf16",
    "default_cache_dir",
    "ensure_smollm2",
    "ensure_tiny_model",
    "load_policy",
    "load_pretrained",
    "resolve_device",
    "resolve_dtype",
    "supervised_warmup",
]
