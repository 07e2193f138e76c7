"""Pretrain the toy world's student and teacher (issue #4): two small relay_ref `Qwen3ForCausalLM`s.

The paper's student and teacher (§4.1.1: Qwen3-1.7B/0.6B and Qwen3-8B) come pretrained; this script makes
their toy counterparts so every later stage (relay §3.1, warm-up SFT D11, GRPO §3.2) runs on a CPU.
Both are trained on the worked solutions of `scripts/make_toy_world.py`: the chat-formatted question
(`Tokenizer.chat_prompt`, Qwen3 non-thinking mode) followed by the solution and `<|im_end|>`, with the
cross-entropy on response tokens only. Problems are drawn fresh from the generator for every batch
(seeded), never one whose expression is in data/toy/test.jsonl.

The student is deliberately small and handicapped: its drill rows keep only 30% of the multiplication
lines (`drill_mul_keep`), so it copies numbers, lays out lines and adds well but gets many products wrong,
the steps where a short teacher call helps. The teacher is larger and trained longer. Each is saved in
Hugging Face layout (`save_pretrained(dir, tokenizer=tok)`, every file written atomically) in bfloat16 by
default to keep the committed weights small; `load_model` upcasts to float32, and the accuracy this script
reports is measured on what was stored.

`--command-spans K` interrupts each chat example with up to K `<call>n</call>` commands that the model reads
but is never asked to write (a pretrained LLM reads past an interruption; a 1M model that never saw one
does not, docs/benchmarks.md §2). The shipped student was trained with K = 3.

Deterministic for a given --seed and --threads. `--eval-only` measures stored models (see
scripts/eval_toy.py for the accuracy table and the critical-token experiment).
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Measured on the shared 2-core machine: with a colleague's process busy, libgomp's default spin-waiting
# makes a 2-thread step 5-15x slower; passive waiting costs ~20% when idle and keeps it ~2x under load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `scripts.` imports when run as a file
from relay_ref.data import insert_commands  # noqa: E402
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from relay_ref.errors import ArgumentParser, run_script  # noqa: E402
from scripts.make_toy_world import MODEL_VOCAB_SIZE, build_tokenizer, make_problem, make_split  # noqa: E402


@dataclass
class TrainSettings:
    steps: int
    chat_batch: int = 16  # chat-formatted examples per step
    drill_batch: int = 16  # packed rows of bare solution lines per step
    drill_len: int = 256
    drill_mul_keep: float = 1.0  # share of multiplication lines kept in drill rows (the student's handicap)
    command_spans: int = 0  # up to this many `<call>n</call>` spans read (never predicted) per chat example
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0


def toy_config(hidden, layers, intermediate, heads, kv_heads) -> Qwen3Config:
    # Short sequences (< 256 tokens): a smaller RoPE base than Qwen3's 1e6 keeps more dimensions useful.
    return Qwen3Config(vocab_size=MODEL_VOCAB_SIZE, hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       head_dim=hidden // heads, rope_theta=10000.0, max_position_embeddings=512)


MODELS = {
    "student": (toy_config(128, 4, 512, 4, 2), TrainSettings(steps=600, chat_batch=8, drill_mul_keep=0.3,
                                                             command_spans=3)),
    "teacher": (toy_config(256, 6, 768, 8, 4), TrainSettings(steps=1200, chat_batch=8, lr=1.5e-3)),
}


def encode_example(tok, problem: dict) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids): the chat prompt, then the worked solution and `<|im_end|>`."""
    return tok.chat_prompt(problem["problem"]), tok.encode(problem["solution"]) + [tok.eos_ids[0]]


def pad_rows(rows, pad):
    """[(ids, labels)] -> input ids [B, T] right-padded, labels [B, T] (-100 = no loss), already shifted."""
    T = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
    return ids, labels


def chat_rows(tok, problems, command_spans=0, rng=None):
    """Chat rows with the loss on the response. With `command_spans`, 0..command_spans commands
    `<call>n</call>` (n in 1..9, as D11 places them) interrupt the response, with no loss on predicting
    them: the model learns to read across an interruption, as a pretrained LLM does, never to make one."""
    rows = []
    for p in problems:
        prompt, response = encode_example(tok, p)
        targets = list(response)
        if command_spans:
            # Negative markers stand for response positions; what insert_commands adds (ids >= 0) is a command.
            marked = insert_commands([-1 - i for i in range(len(response))], tok.commands, rng, command_spans, 0)
            response = [response[-1 - m] if m < 0 else m for m in marked]
            targets = [t if m < 0 else -100 for t, m in zip(response, marked)]
        # position t predicts token t+1: no loss before the last prompt token
        rows.append((prompt + response, [-100] * (len(prompt) - 1) + targets))
    return rows


def drill_row(tok, stream, length: int, mul_keep: float = 1.0, rng: random.Random | None = None):
    """Solution lines `l<op>r=v` of fresh problems packed into one row; loss on each `v\n` only.

    The chat examples cost ~170 tokens for ~2 arithmetic steps (the fixed instruction dominates); these
    rows give ~25 steps for 256 tokens, so the arithmetic is learned in minutes instead of hours."""
    ids, labels = [], []
    while True:
        for line in next(stream)["solution"].split("\n")[:-1]:
            lhs, rhs = line.split("=")
            if "*" in lhs and mul_keep < 1 and rng.random() >= mul_keep:
                continue
            x, y = tok.encode(lhs + "="), tok.encode(rhs + "\n")
            if len(ids) + len(x) + len(y) > length:
                return ids, labels[1:] + [-100]
            ids += x + y
            labels += [-100] * len(x) + y


def problem_stream(seed: int, exclude: set[str]):
    rng = random.Random(seed)
    while True:
        p = make_problem(rng)
        if p["expression"] not in exclude:
            yield p


def masked_ce(model, ids, labels):
    logits = model(ids)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def train(name: str, cfg: Qwen3Config, s: TrainSettings, tok, exclude, seed: int, eval_every: int = 0,
          validation=()) -> Qwen3ForCausalLM:
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    for m in model.modules():  # small models train faster from a GPT-2-like init than from nn defaults
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(m.weight, std=0.02)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.98))

    def lr_at(step):
        if step < s.warmup:
            return s.lr * (step + 1) / s.warmup
        t = (step - s.warmup) / max(1, s.steps - s.warmup)
        return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

    chat_stream, drill_stream = problem_stream(seed, exclude), problem_stream(seed + 1, exclude)
    drill_rng, span_rng = random.Random(seed + 2), random.Random(seed + 3)
    pad = tok.eos_ids[-1]
    model.train()
    bar = tqdm(range(s.steps), desc=f"{name} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M)")
    ema = None
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        chat = chat_rows(tok, [next(chat_stream) for _ in range(s.chat_batch)], s.command_spans, span_rng)
        chat_loss = masked_ce(model, *pad_rows(chat, pad))
        loss = chat_loss
        if s.drill_batch:
            rows = [drill_row(tok, drill_stream, s.drill_len, s.drill_mul_keep, drill_rng) for _ in range(s.drill_batch)]
            loss = loss + masked_ce(model, *pad_rows(rows, pad))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        ema = chat_loss.item() if ema is None else 0.95 * ema + 0.05 * chat_loss.item()
        bar.set_postfix(chat_loss=f"{ema:.4f}", lr=f"{lr_at(step):.2e}")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < s.steps:
            model.eval()
            bar.write(f"{name} step {step + 1}: greedy accuracy {accuracy(model, tok, validation):.3f} "
                      f"on {len(validation)} validation questions")
            model.train()
    return model.eval()


def load_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def accuracy(model, tok, problems, max_new_tokens=96) -> float:
    """Greedy pass@1, checked as everywhere else (D13): `relay_ref.evaluation.evaluate` in mode `student`."""
    from relay_ref.evaluation import evaluate
    with torch.no_grad():
        return evaluate("student", model, None, tok, problems, max_new_tokens=max_new_tokens, batch_size=128,
                        desc="greedy eval")["accuracy"]


def main(argv=None):
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--which", choices=["student", "teacher", "both"], default="both")
    ap.add_argument("--out", default="weights/toy", help="writes <out>/student and <out>/teacher")
    ap.add_argument("--test", default="data/toy/test.jsonl", help="held-out questions (excluded, evaluated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
    ap.add_argument("--lr", type=float, default=None, help="override the preset's peak learning rate")
    ap.add_argument("--drill-batch", type=int, default=None, help="override the preset's drill rows per step")
    ap.add_argument("--chat-batch", type=int, default=None, help="override the preset's chat examples per step")
    ap.add_argument("--drill-mul-keep", type=float, default=None,
                    help="override the preset's share of multiplication lines kept in drill rows")
    ap.add_argument("--command-spans", type=int, default=None,
                    help="override the preset's max `<call>n</call>` interruptions read per chat example")
    ap.add_argument("--store-dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--n-eval", type=int, default=500, help="test questions for the greedy accuracy")
    ap.add_argument("--eval-only", action="store_true", help="measure the stored models, train nothing")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="steps between greedy accuracy checks on 100 generated validation questions (0: none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = build_tokenizer()
    test = load_jsonl(args.test)
    validation = make_split(100, seed=10_000, exclude={p["expression"] for p in test})
    exclude = {p["expression"] for p in test + validation}  # never trained on
    names = ["student", "teacher"] if args.which == "both" else [args.which]
    for i, name in enumerate(names):
        path = Path(args.out) / name
        if not args.eval_only:
            cfg, settings = MODELS[name]
            keys = ("steps", "lr", "drill_batch", "chat_batch", "drill_mul_keep", "command_spans")
            overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
            settings = TrainSettings(**{**asdict(settings), **overrides})
            t0 = time.time()
            model = train(name, cfg, settings, tok, exclude, args.seed + 1000 * (i + 1), args.eval_every, validation)
            minutes = (time.time() - t0) / 60
            model.to(getattr(torch, args.store_dtype)).save_pretrained(path, tokenizer=tok)
            print(f"{name}: trained {settings} in {minutes:.1f} min, saved to {path}")
        from relay_ref.checkpoint import load_model
        stored = load_model(path)
        acc = accuracy(stored, tok, test[:args.n_eval])
        print(f"{name}: {sum(p.numel() for p in stored.parameters()):,} parameters, "
              f"greedy accuracy {acc:.3f} on {min(args.n_eval, len(test))} test questions")


if __name__ == "__main__":
    run_script(main)
