"""Training checkpoints that survive a crash: HF-layout weights plus optimizer, step and RNG state.

A checkpoint directory is written whole under a temporary name, then swapped in by renames, so at every
instant either the old or the new checkpoint is complete on disk (`find_checkpoint` recovers a crash
between the two renames). `--resume` reloads it and continues to the same result as an
uninterrupted run: every random choice of the training loops is derived from (seed, step) as well.
"""

import json
import random
import shutil
import sys
from pathlib import Path

import torch

from .checkpoint import atomic_write, load_model
from .errors import UserError

STATE_FILE, INFO_FILE = "trainer_state.pt", "trainer_info.json"


def save_checkpoint(directory, model, tokenizer, optimizer, step: int, info: dict | None = None) -> None:
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, tokenizer)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate()}, tmp / STATE_FILE)
    # Written last, atomically: its presence marks the directory complete (find_checkpoint)
    atomic_write(tmp / INFO_FILE, lambda p: p.write_text(json.dumps({"step": step, **(info or {})}, indent=2)))
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory) -> Path | None:
    """The recovery rule: `<dir>`, else a complete `<dir>.tmp` (newer than `.old`), else `<dir>.old`."""
    directory = Path(directory)
    for suffix in ("", ".tmp", ".old"):
        candidate = directory.with_name(directory.name + suffix)
        if (candidate / STATE_FILE).exists() and (candidate / INFO_FILE).exists():
            return candidate
    return None


def metrics_before(path, step: int) -> list[str]:
    """The lines of metrics.jsonl for the steps before `step`; a torn last line (a power loss while it was
    written) is dropped with a warning, a bad line before it is a UserError naming the line."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if Path(path).exists() else []
    for i, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            if i < len(lines):
                raise UserError(f"{path}:{i}: not a JSON line; the metrics log is corrupt") from None
            print(f"warning: {path}:{i}: dropped a torn last line", file=sys.stderr)
            lines.pop()
    return [line for line in lines if json.loads(line)["step"] < step]


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
