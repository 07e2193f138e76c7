r"""Warm-up SFT (paper §3.1): cross-entropy on response tokens, command tokens included.

    python scripts/train_sft.py runs/toy/warmup_data.jsonl runs/toy/warmup --epochs 2 --lr 1e-4 \
        --command-lr-scale 100 --commands-only          # the toy preset's settings

Reads the rows written by scripts/make_warmup.py (`prompt_ids`, `response_ids`) and saves the warm-up
student in Hugging Face layout with its tokenizer; scripts/train_grpo.py --warmup DIR starts from it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from relay_ref.checkpoint import load_model
from relay_ref.errors import ArgumentParser, UserError, run_script
from relay_ref.sft import train_sft
from relay_ref.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--student", default=str(ROOT / "weights/toy/student"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5, help="the release: 2e-5 for Qwen3; the toy preset uses 1e-4")
    ap.add_argument("--command-lr-scale", type=float, default=1.0,
                    help="the <call>/</call> rows learn this many times faster (new tokens, D1); "
                         "1 is the paper (and its preset); the toy preset uses 100")
    ap.add_argument("--commands-only", action="store_true",
                    help="train only the <call>/</call> rows, the rest of the student stays as it is (the toy preset)")
    ap.add_argument("--warmup-ratio", type=float, default=0.03)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    examples = []
    for n, line in enumerate(args.data.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError as e:
            raise UserError(f"{args.data}:{n}: invalid JSON ({e.msg})") from None
        if row is None:
            continue
        if not isinstance(row, dict) or not all(isinstance(row.get(k), list) for k in ("prompt_ids", "response_ids")):
            raise UserError(f"{args.data}:{n}: needs prompt_ids and response_ids (written by scripts/make_warmup.py)")
        examples.append(row)
    if not examples:
        raise UserError(f"{args.data}: no warm-up examples (the file is empty)")
    tok = load_tokenizer(args.student)
    student = load_model(args.student, device=args.device)
    student.gradient_checkpointing = args.gradient_checkpointing
    losses = train_sft(student, examples, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay, seed=args.seed,
                       commands=tok.commands, command_lr_scale=args.command_lr_scale,
                       commands_only=args.commands_only)
    student.save_pretrained(args.out, tok)
    print(f"final loss {losses[-1]:.4f}; warm-up student -> {args.out}")


if __name__ == "__main__":
    run_script(main)
