"""Measure the toy world's models (issue #4): greedy accuracy, where the student errs, and whether a few
teacher-written tokens at the student's first wrong step fix its answer (the paper's premise, §1 and §3.1:
a student that calls for the critical tokens only).

- accuracy: greedy pass@1 on data/toy/test.jsonl, checked by `relay_ref.answers.is_correct` (D13);
- error profile: each wrong student response is aligned line by line with the reference solution; the first
  differing line is a `copy` error (wrong operands) or an arithmetic error of its operation (`*`, `+`, `-`);
- critical-token experiment (`--fix-rounds k`): up to k times, cut the student's response right after the
  `=` of its first wrong line (at the line start for a copy error), let the teacher write greedily up to
  and including the newline, seeing the prompt and the student's text so far exactly as the relay's teacher
  view would (no command tokens), then let the student continue greedily. Reports how often that fixes the
  answer and how many teacher tokens it took. No `<call>` is emitted: this tests the world, not a policy.

    python scripts/eval_toy.py                     # accuracy of weights/toy/{student,teacher}
    python scripts/eval_toy.py --fix-rounds 2      # plus the error profile and the experiment
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pretrain_toy.py
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relay_ref.answers import is_correct  # noqa: E402
from relay_ref.checkpoint import load_model  # noqa: E402
from relay_ref.generate import generate  # noqa: E402
from relay_ref.tokenizer import load_tokenizer  # noqa: E402
from scripts.make_toy_world import solve  # noqa: E402
from scripts.pretrain_toy import load_jsonl  # noqa: E402


def run(model, tok, prompts, max_new_tokens, stop=(), batch_size=128) -> list[list[int]]:
    out = []
    for i in range(0, len(prompts), batch_size):
        out += generate(model, prompts[i:i + batch_size], max_new_tokens, eos_ids=tuple(tok.eos_ids) + tuple(stop),
                        vocab_limit=len(tok))
    return out


def first_error(response: str, expression: str) -> tuple[int, str] | None:
    """(character offset where a teacher should take over, kind) of the first line that differs from the
    reference solution, or None if every reference step is there."""
    steps, _ = solve(expression)
    offset = 0
    for ref, line in zip(steps, response.split("\n")):
        if line != ref:
            lhs, _, rhs = line.partition("=")
            if lhs == ref.split("=")[0]:
                op = next(c for c in lhs[1:] if c in "+-*")
                return offset + len(lhs) + 1, op
            return offset, "copy"
        offset += len(line) + 1
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", default="weights/toy/student")
    ap.add_argument("--teacher", default="weights/toy/teacher")
    ap.add_argument("--test", default="data/toy/test.jsonl")
    ap.add_argument("--n", type=int, default=500, help="number of test questions")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--fix-rounds", type=int, default=0, help="teacher interventions per response (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.student)
    test = load_jsonl(args.test)[:args.n]
    prompts = [tok.chat_prompt(p["problem"]) for p in test]
    models = {name: load_model(path) for name, path in (("student", args.student), ("teacher", args.teacher))}
    texts = {}
    for name, model in models.items():
        texts[name] = [tok.decode(r) for r in run(model, tok, prompts, args.max_new_tokens)]
        ok = [is_correct(t, p["answer"]) for t, p in zip(texts[name], test)]
        lengths = [len(tok.encode(t)) for t in texts[name]]
        print(f"{name}: greedy accuracy {sum(ok) / len(test):.3f} on {len(test)} test questions "
              f"(mean response {sum(lengths) / len(lengths):.1f} tokens)")
    if args.fix_rounds == 0:
        return
    student, teacher = models["student"], models["teacher"]
    current = list(texts["student"])
    correct = [is_correct(t, p["answer"]) for t, p in zip(current, test)]
    kinds = Counter(first_error(t, p["expression"])[1] for t, p, c in zip(current, test, correct)
                    if not c and first_error(t, p["expression"]))
    print(f"student's first wrong line, by kind: {dict(kinds.most_common())} "
          f"(+ {sum(not c for c in correct) - sum(kinds.values())} wrong without a differing line)")
    teacher_tokens = [0] * len(test)
    for round_ in range(1, args.fix_rounds + 1):
        todo = [i for i in range(len(test)) if not correct[i] and first_error(current[i], test[i]["expression"])]
        cuts = {i: first_error(current[i], test[i]["expression"])[0] for i in todo}
        prefixes = {i: tok.encode(current[i][:cuts[i]]) for i in todo}
        newline = tok.encode("\n")
        spans = run(teacher, tok, [prompts[i] + prefixes[i] for i in todo], 8, stop=newline)
        rests = run(student, tok, [prompts[i] + prefixes[i] + s for i, s in zip(todo, spans)],
                    args.max_new_tokens)
        for i, span, rest in zip(todo, spans, rests):
            teacher_tokens[i] += len(span)
            current[i] = tok.decode(prefixes[i] + span + rest)
            correct[i] = is_correct(current[i], test[i]["answer"])
        fixed = sum(correct[i] for i in todo)
        span_lengths = Counter(len(s) for s in spans)
        print(f"round {round_}: teacher wrote the first wrong line's result for {len(todo)} responses "
              f"(span lengths {dict(sorted(span_lengths.items()))}); {fixed} now correct; "
              f"accuracy {sum(correct) / len(test):.3f}")
    helped = [i for i in range(len(test)) if teacher_tokens[i]]
    ratio = [teacher_tokens[i] / len(tok.encode(current[i])) for i in helped]
    print(f"teacher tokens per helped response: mean {sum(teacher_tokens) / max(1, len(helped)):.1f}, "
          f"share of the response mean {sum(ratio) / max(1, len(ratio)):.3f}")


if __name__ == "__main__":
    main()
