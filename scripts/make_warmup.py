r"""Warm-up data (paper §3.1, D11): the vanilla student's own responses with 0-3 `<call>n</call>` inserted.

    python scripts/make_warmup.py data/toy/train.jsonl runs/toy/warmup_data.jsonl --limit 2000 \
        --temperature 0.6 --max-exponent 0 --unsure-below 0.5 --max-new-tokens 128    # the toy preset's settings

Each row keeps the question and holds `prompt_ids` and `response_ids` (token ids, so nothing is
re-tokenised) and `response` (the decoded text, for reading). `scripts/train_sft.py` trains on it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from relay_ref.checkpoint import load_model
from relay_ref.data import load_questions, save_jsonl
from relay_ref.sft import make_warmup_examples
from relay_ref.tokenizer import load_tokenizer
from relay_ref.errors import ArgumentParser, run_script

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("questions", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--student", default=str(ROOT / "weights/toy/student"))
    ap.add_argument("--limit", type=int, help="only the first N questions")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=8192)
    ap.add_argument("--max-commands", type=int, default=3)
    ap.add_argument("--max-exponent", type=int, default=3, help="n = d * 10^j with j in 0..this (D11: 3)")
    ap.add_argument("--unsure-below", type=float, metavar="P",
                    help="commands only before tokens where the student's top-1 probability < P "
                         "(default: any token boundary, D11; the toy preset uses 0.5)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    questions = load_questions(args.questions)[:args.limit]
    tok = load_tokenizer(args.student)
    student = load_model(args.student, device=args.device, dtype=getattr(torch, args.dtype))
    examples = make_warmup_examples(student, tok, questions, temperature=args.temperature,
                                    max_new_tokens=args.max_new_tokens, seed=args.seed, max_commands=args.max_commands,
                                    max_exponent=args.max_exponent, unsure_below=args.unsure_below)
    save_jsonl([{**q, **e, "response": tok.decode(e["response_ids"])} for q, e in zip(questions, examples)], args.out)
    print(f"{len(examples)} warm-up examples -> {args.out}")


if __name__ == "__main__":
    run_script(main)
