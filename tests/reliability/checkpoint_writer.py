"""Write checkpoints in a loop until killed: `python checkpoint_writer.py RUN_DIR FIRST_STEP`.

Each checkpoint goes through eapo's own `save_checkpoint`; its 8 MB of "weights" are filled with the step
number, so a test can tell a checkpoint that mixes two saves from a sound one. Prints `saved N` after each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from eapo.train.checkpoint import save_checkpoint

WEIGHT_SHAPE = (2048, 1024)  # 8 MB of float32: a write, checksum and fsync long enough to be hit


class StandInModel:
    """What save_checkpoint needs of a model: `save_pretrained(folder, safe_serialization=True)`."""

    def __init__(self) -> None:
        self.weight = torch.zeros(WEIGHT_SHAPE)

    def save_pretrained(self, folder: Path, safe_serialization: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight}, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"model_type": "stand-in"}))


class StandInTokenizer:
    def save_pretrained(self, folder: Path) -> None:
        (folder / "tokenizer.json").write_text(json.dumps({"vocab": list("abc")}))


def main() -> None:
    run_dir, step = Path(sys.argv[1]), int(sys.argv[2])
    model, tokenizer = StandInModel(), StandInTokenizer()
    while True:
        model.weight.fill_(step)
        trainer_state = {"optimizer": {"exp_avg": torch.full((256, 256), float(step))}}
        save_checkpoint(run_dir, step, model, tokenizer, trainer_state, {"step": step}, keep=2)
        print(f"saved {step}", flush=True)
        step += 1


if __name__ == "__main__":
    main()
