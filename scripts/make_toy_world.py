"""The embedded toy world: multi-step integer arithmetic, a character-level Qwen3-style tokenizer.

Why (issue #4): the relay (paper §3.1), the warm-up SFT (§3.1, D11) and GRPO (§3.2) must run end to end on a
laptop CPU in minutes, through exactly the code paths real Qwen3 uses: the same architecture and checkpoint
layout, a `tokenizers` tokenizer.json with Qwen3's chat special tokens and EOS ids, and the command tokens
`<call>`/`</call>` of decision D1 as added special tokens with one id each.

Contract:
- `make_problem(rng)` draws one question from a weighted list of expression templates and returns
  `{"problem", "answer", "solution"}`. The solution evaluates the expression one operation per line in the
  usual order (parentheses, then `*`, then `+`/`-`, left to right), e.g. `(37+48)*6-125`:

      37+48=85
      85*6=510
      510-125=385
      So the answer is \\boxed{385}.

  Every intermediate result is a non-negative integer, and `answer == str(eval(expression))`.
  Additions and copies are easy; each multiplication (a 2-3 digit number times a digit) is the "critical
  token" step a small student gets wrong and the teacher gets right, so a call of a few tokens placed just
  after `=` fixes it. Templates hold 0, 1 or 2 multiplications, which spreads the difficulty.
- `make_split(n, seed, exclude)` draws n problems with distinct expressions, skipping any in `exclude`;
  the test split is drawn first and the train split excludes its expressions, so no test question is in train.
- `build_tokenizer()`: one token per character over `ALPHABET` (so each digit is one id, as in Qwen), then
  Qwen3's added tokens in Qwen3's order (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<think>`,
  `</think>`), then `<call>`, `</call>` (D1). A character outside the alphabet is an encoding error, never
  silently dropped. `MODEL_VOCAB_SIZE` (128) leaves padding rows after the 103 tokens, as Qwen3's 151936
  rows do after its 151671 tokens.

Run `python scripts/make_toy_world.py` to rewrite data/toy/{train,test}.jsonl (deterministic for the seeds).
"""
from __future__ import annotations

import argparse
import ast
import json
import random
from pathlib import Path

from tokenizers import AddedToken, Tokenizer as HFTokenizer, models, pre_tokenizers, decoders

from relay_ref.errors import ArgumentParser, run_script

ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # newline and printable ASCII
QWEN3_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
               ("<think>", False), ("</think>", False)]  # Qwen3 marks the think tags non-special
COMMAND_TOKENS = ["<call>", "</call>"]
MODEL_VOCAB_SIZE = 128

# Placeholders: A = 10..99, T = 10, 20, ..., 90, d/e = 2..9. The one hard kind of step is a 2-digit number
# times a digit (a 720-entry table whose leading digits need the carry of the units); adding or subtracting
# a round T and copying numbers are easy. This split was chosen after pilots with arbitrary 2-3 digit
# additions and subtractions: plain most-significant-digit-first sums are learned too slowly for the 30-minute
# CPU budget even by a 5M teacher. Templates read their numbers in the question's order and chain the
# running value left to right; weights set the mix of 0/1/2 multiplications, which spreads the difficulty.
TEMPLATES = [
    ("A+T-T", 1), ("A-T+T", 1),
    ("A*d+T", 2), ("A*d-T", 2), ("(A+T)*d", 1), ("(A-T)*d", 1), ("(A+T)*d-T", 1), ("(A-T)*d+T", 1),
    ("(A*d+T)*e", 1), ("(A*d-T)*e", 2), ("(A-T)*d-T", 1),
]
RANGES = {"A": (10, 99, 1), "T": (10, 90, 10), "d": (2, 9, 1), "e": (2, 9, 1)}
PHRASES = ["Compute {}.", "What is {}?", "Evaluate {}.", "Calculate {}."]
OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def solve(expression: str) -> tuple[list[str], int]:
    """The worked steps `l<op>r=v` of an expression, in evaluation order (post-order), and its value."""
    steps = []

    def walk(node):
        if isinstance(node, ast.Constant):
            return node.value
        left, right = walk(node.left), walk(node.right)
        op = OPS[type(node.op)]
        value = {"+": left + right, "-": left - right, "*": left * right}[op]
        steps.append(f"{left}{op}{right}={value}")
        return value

    value = walk(ast.parse(expression, mode="eval").body)
    return steps, value


def fill(template: str, rng: random.Random) -> str:
    return "".join(str(rng.randrange(RANGES[c][0], RANGES[c][1] + 1, RANGES[c][2])) if c in RANGES else c
                   for c in template)


def well_formed(steps: list[str]) -> bool:
    """Every result is non-negative, and every multiplication is a 2-digit number times a digit."""
    for step in steps:
        lhs, value = step.split("=")
        if int(value) < 0 or ("*" in lhs and not 10 <= int(lhs.split("*")[0]) <= 99):
            return False
    return True


def make_problem(rng: random.Random) -> dict:
    templates, weights = zip(*TEMPLATES)
    template = rng.choices(templates, weights)[0]
    while True:  # rejection sampling within the template
        expression = fill(template, rng)
        steps, value = solve(expression)
        if well_formed(steps):
            break
    solution = "\n".join(steps) + f"\nSo the answer is \\boxed{{{value}}}."
    return {"problem": rng.choice(PHRASES).format(expression), "answer": str(value), "solution": solution,
            "expression": expression}


def make_split(n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    rng, seen, out = random.Random(seed), set(exclude), []
    while len(out) < n:
        p = make_problem(rng)
        if p["expression"] not in seen:
            seen.add(p["expression"])
            out.append(p)
    return out


def build_tokenizer():
    """The toy tokenizer as relay_ref's wrapper (`relay_ref.tokenizer.Tokenizer`)."""
    from relay_ref.tokenizer import Tokenizer
    hf = HFTokenizer(models.WordLevel(vocab={c: i for i, c in enumerate(ALPHABET)}, unk_token=None))
    hf.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one piece per character
    hf.decoder = decoders.Fuse()  # concatenate pieces back without separators
    for content, special in QWEN3_ADDED + [(t, True) for t in COMMAND_TOKENS]:
        token = AddedToken(content, special=special, normalized=False)
        (hf.add_special_tokens if special else hf.add_tokens)([token])
    return Tokenizer(hf, source="make_toy_world.build_tokenizer")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main(argv=None):
    ap = ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/toy", help="directory for train.jsonl and test.jsonl")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="test split seed; train uses seed + 1")
    args = ap.parse_args(argv)
    test = make_split(args.n_test, args.seed)
    train = make_split(args.n_train, args.seed + 1, exclude={p["expression"] for p in test})
    write_jsonl(Path(args.out) / "test.jsonl", test)
    write_jsonl(Path(args.out) / "train.jsonl", train)
    print(f"wrote {len(train)} train and {len(test)} test problems to {args.out}")


if __name__ == "__main__":
    run_script(main)
