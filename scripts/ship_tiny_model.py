"""Re-make the tiny model that ships in the package (src/eapo/models/assets/tiny_default/).

The default config's supervised warm-up (configs/tiny.yaml, fp32, stop rule on the validation split) is run
from scratch on the CPU, saved, and copied into the package with a manifest that pins each file's SHA-256
and the cache key it answers to. `eapo train` with the default config then copies it instead of training,
so every machine starts RL from the same weights. Run it after anything that changes the tiny model's cache
key (the task or tiny config, `FORMAT_VERSION`); tests/models/test_models_tiny.py fails until you do.

    python scripts/ship_tiny_model.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from eapo.models.tiny import SFT_RECORD, ship_tiny_model, supervised_warmup, tiny_cache_key
from eapo.tasks import load_task
from eapo.train.config import load_config


def main() -> None:
    config = load_config(None)
    task = load_task(config.task)
    key = tiny_cache_key(task, config.model.tiny)
    model, tokenizer, record = supervised_warmup(task, config.model.tiny, device=torch.device("cpu"))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (Path(folder) / SFT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        manifest = ship_tiny_model(Path(folder), key)
    print(
        f"shipped tiny model {key}: {record['steps']} SFT steps, validation accuracy {record['accuracy']:.3f}"
    )
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
