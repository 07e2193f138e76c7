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
- confidence caller (`--confidence-caller TAU N`): the student decodes greedily and, wherever its top-1
  probability is below TAU, `<call>N</call>` goes into its context and the teacher writes the next N tokens
  (greedy, from the context without commands, D3); the call ratio counts the command tokens, as a relay
  response would. No oracle: the placement a trained caller could learn from the student's own
  uncertainty. `--clean-context` also leaves the commands out of the student's context (not the relay).

    python scripts/eval_toy.py                     # accuracy of weights/toy/{student,teacher}
    python scripts/eval_toy.py --fix-rounds 2      # plus the error profile and the experiment
    python scripts/eval_toy.py --confidence-caller 0.5 2
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pretrain_toy.py
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relay_ref.answers import checker_name, is_correct  # noqa: E402
from relay_ref.checkpoint import load_model  # noqa: E402
from relay_ref.commands import format_call  # noqa: E402
from relay_ref.generate import generate  # noqa: E402
from relay_ref.tokenizer import load_tokenizer  # noqa: E402
from relay_ref.errors import ArgumentParser, run_script  # noqa: E402
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


@torch.no_grad()
def confidence_caller(student, teacher, tok, prompts, tau, n, max_new_tokens, batch_size=100,
                      commands_in_context=True):
    """Responses where the teacher writes n tokens wherever the student's top-1 probability < tau, the
    number of calls and of teacher-written tokens per response. As in the relay (D3), the student's context
    holds `<call>n</call>` before each teacher span and the teacher's does not; `commands_in_context=False`
    leaves the commands out of the student's context too. Returns the responses as the teacher sees them
    (the answer text, D13). Full recompute per token: simple, and fast enough for toy models."""
    vocab, eos, out, calls, written = len(tok), set(tok.eos_ids), [], [], []
    command = format_call(n, tok.commands) if commands_in_context else []

    def last_logits(model, seqs):
        ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
        return model(ids)[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs]), :vocab]

    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        seen, text, done = [[] for _ in chunk], [[] for _ in chunk], [False] * len(chunk)  # student's view, teacher's
        left, n_calls, n_teacher = [0] * len(chunk), [0] * len(chunk), [0] * len(chunk)
        while not all(done):
            rows = [i for i in range(len(chunk)) if not done[i]]
            p_student = last_logits(student, [chunk[i] + seen[i] for i in rows]).softmax(-1)
            for r, i in enumerate(rows):
                if left[i] == 0 and p_student[r].max() < tau:
                    left[i], n_calls[i] = n, n_calls[i] + 1
                    seen[i] += command
            t_next = last_logits(teacher, [chunk[i] + text[i] for i in rows]).argmax(-1)
            for r, i in enumerate(rows):
                token = int(t_next[r]) if left[i] else int(p_student[r].argmax())
                n_teacher[i] += left[i] > 0
                left[i] = max(0, left[i] - 1)
                seen[i].append(token)
                text[i].append(token)
                done[i] = token in eos or len(seen[i]) >= max_new_tokens
        out += text
        calls += n_calls
        written += n_teacher
    return out, calls, written


def main(argv=None):
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", default="weights/toy/student")
    ap.add_argument("--teacher", default="weights/toy/teacher")
    ap.add_argument("--test", default="data/toy/test.jsonl")
    ap.add_argument("--n", type=int, default=500, help="number of test questions")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--fix-rounds", type=int, default=0, help="teacher interventions per response (0: none)")
    ap.add_argument("--confidence-caller", nargs=2, type=float, metavar=("TAU", "N"),
                    help="also run the confidence caller: teacher writes N tokens where top-1 prob < TAU")
    ap.add_argument("--clean-context", action="store_true",
                    help="confidence caller: leave the command tokens out of the student's context too (not D3)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.student)
    test = load_jsonl(args.test)[:args.n]
    print(f"answers checked by {checker_name()}")
    prompts = [tok.chat_prompt(p["problem"]) for p in test]
    models = {name: load_model(path) for name, path in (("student", args.student), ("teacher", args.teacher))}
    texts = {}
    for name, model in models.items():
        texts[name] = [tok.decode(r) for r in run(model, tok, prompts, args.max_new_tokens)]
        ok = [is_correct(t, p["answer"]) for t, p in zip(texts[name], test)]
        lengths = [len(tok.encode(t)) for t in texts[name]]
        print(f"{name}: greedy accuracy {sum(ok) / len(test):.3f} on {len(test)} test questions "
              f"(mean response {sum(lengths) / len(lengths):.1f} tokens)")
    if args.confidence_caller:
        tau, n = args.confidence_caller[0], int(args.confidence_caller[1])
        out, calls, written = confidence_caller(models["student"], models["teacher"], tok, prompts, tau, n,
                                                args.max_new_tokens, commands_in_context=not args.clean_context)
        acc = sum(is_correct(tok.decode(r), p["answer"]) for r, p in zip(out, test)) / len(test)
        n_all = sum(len(r) + len(format_call(n, tok.commands)) * c for r, c in zip(out, calls))  # + commands
        where = "out of" if args.clean_context else "in"
        print(f"confidence caller (top-1 < {tau}, n = {n}; commands {where} the student's context): accuracy {acc:.3f}, "
              f"{sum(calls) / len(test):.2f} calls per response, call ratio {sum(written) / n_all:.3f}")
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
    run_script(main)
