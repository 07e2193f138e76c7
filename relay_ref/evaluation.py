"""Evaluation shaped like the paper's tables (paper §4.2, Table 1, Fig. 1; D6, D13, D14).

Modes: `student` and `teacher` alone, `relay` (the student calls the teacher), `teacher-free` (commands
banned, §5.3), `fixed` (every command executes with n = k, §5.4), `random-caller` (a token-level random
caller at a matched call ratio). Accuracy is greedy pass@1 by default, avg@k with `samples=k` and a
temperature; the teacher inside the relay is greedy unless `teacher_temperature` says otherwise (D4), the
teacher alone samples like any model evaluated alone. The two baselines have the command tokens banned,
every model is limited to the tokenizer's rows, and all rows are one continuous-batching call of
`batch_size` slots. The call ratio is a micro-average over a benchmark, summed teacher tokens over summed
response tokens (D6; the teacher alone: 100%). Records keep `token_ids` and their `authors` for transcripts.

`random_router` is the paper's query-level baseline: a router that sends a share p of whole questions
to the teacher reaches (1 - p) * acc_student + p * acc_teacher at a teacher share of about p.
"""

from tqdm.auto import tqdm

from .answers import is_correct
from .commands import TEACHER, TEXT, teacher_view
from .generate import generate
from .relay import relay_generate

MODES = ("student", "teacher", "relay", "teacher-free", "fixed", "random-caller")


def evaluate(mode, student, teacher, tokenizer, questions, *, max_new_tokens=1024, batch_size=64, samples=1,
             temperature=0.0, teacher_temperature=0.0, seed=0, fixed_call_tokens=20, random_calls=None,
             max_call_tokens=None, desc=None) -> dict:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    jobs = [q for q in questions for _ in range(samples)]
    prompts = [tokenizer.chat_prompt(q["problem"]) for q in jobs]
    with tqdm(total=len(jobs), desc=desc or mode, unit="response", leave=False) as bar:
        common = dict(eos_ids=tokenizer.eos_ids, temperature=temperature, seed=seed,
                      slots=min(batch_size, len(jobs)), on_done=bar.update)
        if mode in ("student", "teacher"):
            tokens = generate(student if mode == "student" else teacher, prompts, max_new_tokens, vocab_limit=len(tokenizer),
                              banned_ids=(tokenizer.commands.call_id, tokenizer.commands.end_id), **common)
            authors = [[TEACHER if mode == "teacher" else TEXT] * len(t) for t in tokens]
        else:
            out = relay_generate(student, teacher, prompts, commands=tokenizer.commands,
                                 max_new_tokens=max_new_tokens, teacher_free=mode in ("teacher-free", "random-caller"),
                                 fixed_call_tokens=fixed_call_tokens if mode == "fixed" else None,
                                 random_calls=random_calls if mode == "random-caller" else None,
                                 max_call_tokens=max_call_tokens, teacher_temperature=teacher_temperature,
                                 student_vocab_limit=len(tokenizer), teacher_vocab_limit=len(tokenizer), **common)
            tokens, authors = out.tokens, out.authors
    records = []
    for q, t, a in zip(jobs, tokens, authors):
        answer_text = tokenizer.decode(teacher_view(t, a))  # D13 on the text without command tokens
        records.append({"problem": q["problem"], "answer": q["answer"], "response": tokenizer.decode(t),
                        "correct": is_correct(answer_text, q["answer"]), "tokens": len(t),
                        "teacher_tokens": a.count(TEACHER), "token_ids": t, "authors": a})
    n_tokens = sum(r["tokens"] for r in records)
    return {"mode": mode, "accuracy": sum(r["correct"] for r in records) / max(len(records), 1),
            "call_ratio": sum(r["teacher_tokens"] for r in records) / max(n_tokens, 1),
            "questions": len(questions), "samples": samples, "records": records}


def matched_random_calls(call_ratio: float, k: int) -> tuple[float, int]:
    """(q, k) for `relay_generate(random_calls=...)` whose expected teacher share is `call_ratio`:
    each student token brings k teacher tokens with probability q, so the share is qk / (1 + qk)."""
    r = min(max(call_ratio, 0.0), 0.99)
    return r / (k * (1 - r)), k


def random_router(acc_student, acc_teacher, acc_relay, relay_call_ratio) -> dict:
    """Fig. 1 / abstract arithmetic. Performance-matched: the router needs a teacher share p* to reach
    the relay's accuracy; cost reduction = 1 - relay_ratio / p*. Resource-matched: at the relay's
    call ratio the router reaches acc_s + ratio * (acc_t - acc_s); margin = relay accuracy minus that."""
    gap = acc_teacher - acc_student
    p_star = (acc_relay - acc_student) / gap if gap else float("nan")
    at_equal_cost = acc_student + relay_call_ratio * gap
    return {"matched_teacher_share": p_star,
            "cost_reduction": 1 - relay_call_ratio / p_star if p_star > 0 else float("nan"),
            "router_accuracy_at_equal_cost": at_equal_cost, "margin": acc_relay - at_equal_cost}


def accuracy_by_difficulty(correct, base_correct) -> dict:
    """Table 4's split, per question: easy = the base student answers it correctly, hard = it does not."""
    if len(correct) != len(base_correct):
        raise ValueError(f"{len(correct)} results against {len(base_correct)} base-student results")
    split = {"easy": [c for c, b in zip(correct, base_correct) if b],
             "hard": [c for c, b in zip(correct, base_correct) if not b]}
    return {**{k: sum(v) / len(v) if v else float("nan") for k, v in split.items()},
            **{f"n_{k}": len(v) for k, v in split.items()}}


def markdown_table(results: dict, benchmarks: list[str]) -> str:
    """Table 1's shape: one row per method, one column per benchmark, the average and the average call
    ratio (the mean of the per-benchmark micro-averaged ratios, D6). results[method][benchmark] -> evaluate()."""
    lines = ["| Method | " + " | ".join(benchmarks) + " | Average | Avg. Call Ratio |",
             "|---" * (len(benchmarks) + 3) + "|"]
    for method, per_bench in results.items():
        accs = [100 * per_bench[b]["accuracy"] for b in benchmarks]
        ratios = [per_bench[b]["call_ratio"] for b in benchmarks]
        ratio = "–" if method in ("student", "teacher-free") else f"{100 * sum(ratios) / len(ratios):.2f}%"
        lines.append(f"| {method} | " + " | ".join(f"{a:.2f}" for a in accs) + f" | {sum(accs) / len(accs):.2f} | {ratio} |")
    return "\n".join(lines)
