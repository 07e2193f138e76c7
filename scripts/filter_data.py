"""Teacher pass-rate filtering (paper §3.2.2, D12): keep the questions the teacher solves at least half the time.

    python scripts/filter_data.py data/toy/train.jsonl runs/toy/train_filtered.jsonl
    python scripts/filter_data.py dapo.jsonl dapo_filtered.jsonl --teacher Qwen/Qwen3-8B --device cuda --dtype bfloat16

The teacher samples --samples responses per question (10 in the paper; the release used 16 at T 0.7,
top_p 0.95); each kept row gains a `pass_rate` field, so the cut can be redone without sampling again.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm.auto import tqdm

from relay_ref.answers import is_correct, is_scorable
from relay_ref.checkpoint import load_model
from relay_ref.data import keep_by_pass_rate, load_questions, save_jsonl
from relay_ref.generate import generate
from relay_ref.tokenizer import load_tokenizer
from relay_ref.errors import ArgumentParser, run_script

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("questions", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--teacher", default=str(ROOT / "weights/toy/teacher"))
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=8192)
    ap.add_argument("--batch-size", type=int, default=64, help="rows decoded at once (continuous batching slots)")
    ap.add_argument("--limit", type=int, help="only the first N questions")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch intra-op CPU threads (default: torch's, one per core)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    questions = load_questions(args.questions)[:args.limit]
    tok = load_tokenizer(args.teacher)
    teacher = load_model(args.teacher, device=args.device, dtype=getattr(torch, args.dtype))
    jobs = [i for i in range(len(questions)) for _ in range(args.samples)]
    # D12 judges the teacher alone: no command tokens (they mean nothing outside the relay), tokenizer rows only.
    with tqdm(total=len(jobs), desc="teacher samples", unit="response") as bar:
        outs = generate(teacher, [tok.chat_prompt(questions[i]["problem"]) for i in jobs], args.max_new_tokens,
                        temperature=args.temperature, top_p=args.top_p, eos_ids=tok.eos_ids, seed=args.seed,
                        slots=min(args.batch_size, len(jobs)), vocab_limit=len(tok),
                        banned_ids=(tok.commands.call_id, tok.commands.end_id), on_done=bar.update)
    wins = [0] * len(questions)
    for i, out in zip(jobs, outs):
        wins[i] += is_correct(tok.decode(out), questions[i]["answer"])
    rates = [w / args.samples for w in wins]
    kept = keep_by_pass_rate(rates, args.threshold)
    save_jsonl([{**questions[i], "pass_rate": rates[i]} for i in kept], args.out)
    unscorable = sum(not is_scorable(q["answer"]) for q in questions)  # pass rate 0 whatever the teacher wrote
    print(f"kept {len(kept)} of {len(questions)} questions (teacher pass rate >= {args.threshold}) -> {args.out}; "
          f"{unscorable} dropped for a gold answer that cannot be scored (answers.is_scorable)")


if __name__ == "__main__":
    run_script(main)
