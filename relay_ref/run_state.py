"""Training checkpoints that survive a crash: HF-layout weights plus optimizer, step and RNG state.

A checkpoint directory is written whole under a temporary name, then swapped in by renames, so at every
instant either the old or the new checkpoint is complete on disk (`<dir>.old` is the fallback if a crash
lands between the two renames). `--resume` reloads it and continues to the same result as an
uninterrupted run: every random choice of the training loops is derived from (seed, step) as well.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from .checkpoint import load_model

STATE_FILE = "trainer_state.pt"


def save_checkpoint(directory, model, tokenizer, optimizer, step: int, info: dict | None = None) -> None:
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, tokenizer)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate()}, tmp / STATE_FILE)
    (tmp / "trainer_info.json").write_text(json.dumps({"step": step, **(info or {})}, indent=2))
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory) -> Path | None:
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE_FILE).exists():
            return candidate
    return None


def load_checkpoint(directory, optimizer_factory, device="cpu"):
    """Returns (model, optimizer, step); RNG states restored. `optimizer_factory(model)` builds the optimizer."""
    found = find_checkpoint(directory)
    if found is None:
        raise FileNotFoundError(f"{directory}: no training checkpoint ({STATE_FILE}) to resume from")
    model = load_model(found, device=device)
    state = torch.load(found / STATE_FILE, map_location=device, weights_only=False)
    optimizer = optimizer_factory(model)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return model, optimizer, state["step"]
