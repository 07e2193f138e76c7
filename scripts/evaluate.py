"""Accuracy and call ratio of RelayLLM and its baselines, printed as a table shaped like the paper's Table 1.

    python scripts/evaluate.py                                   # the toy world: weights/toy, data/toy/test.jsonl
    python scripts/evaluate.py --benchmarks gsm8k math500 minerva olympiad aime24 aime25 \\
        --student runs/paper/final --base-student Qwen/Qwen3-1.7B --teacher Qwen/Qwen3-8B \\
        --max-new-tokens 8192 --device cuda --dtype bfloat16 --batch-size 64

Rows (paper §4.2, §4.4, §5.3, §5.4; D14), one run each per benchmark:
- student: the base (untrained) student alone, the "Base Model" row; --base-student;
- teacher: the teacher alone (call ratio 100%);
- relay: the relay student with its teacher (RelayLLM); --student;
- teacher-free: the relay student with `<call>` banned by a logit mask (Table 4);
- fixed: the relay student with every command executed for n = --fixed-k tokens (Table 5; default 20 as the
  paper's smallest k; the toy world's useful calls are 3-5 tokens, so k = 20 hands the teacher whole lines);
- random-caller: the relay student without commands plus a token-level random caller whose expected teacher
  share equals the relay's call ratio on that benchmark (`matched_random_calls`), handing the teacher spans
  of --random-k tokens (default: the relay's mean teacher span on that benchmark);
- random-router: not run. The query-level router of Fig. 1 at the relay's cost: acc_student + ratio *
  (acc_teacher - acc_student) per benchmark (paper Fig. 1).
Below the table: the cost reduction against the performance-matched router and the accuracy margin at equal
cost, computed from the averages as in the abstract (98.2% and 6.9 points for Qwen3-1.7B).

Columns: one per benchmark (--benchmarks: registry names of relay_ref/benchmarks.py, files, or LABEL=FILE),
the unweighted average, and the average call ratio: the mean over benchmarks of each benchmark's micro-average
Σ teacher tokens / Σ response tokens (D6). Answers are checked by the last \\boxed{} (D13). Decoding is greedy
pass@1 (D14); `--samples k --temperature T` gives avg@k (the paper's AIME setting is avg@32). The JSON written
to --out holds every run's accuracy, call ratio, time and records (token ids and authors included) for
scripts/show.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import groupby
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads slow a shared CPU (pretrain_toy.py)
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from relay_ref.answers import checker_name  # noqa: E402
from relay_ref.benchmarks import REGISTRY, load_benchmark  # noqa: E402
from relay_ref.checkpoint import check_checkpoint, load_model  # noqa: E402
from relay_ref.commands import TEACHER  # noqa: E402
from relay_ref.data import fit_context  # noqa: E402
from relay_ref.errors import ArgumentParser, UserError, run_script  # noqa: E402
from relay_ref.evaluation import MODES, evaluate, markdown_table, matched_random_calls, random_router  # noqa: E402
from relay_ref.tokenizer import load_tokenizer  # noqa: E402

ROW_NAMES = {"student": "base student alone", "teacher": "teacher alone", "relay": "RelayLLM (relay student)",
             "teacher-free": "relay student, <call> banned", "fixed": "relay student, every call n = k",
             "random-caller": "token-level random caller at the relay's call ratio",
             "random-router": "query-level random router at the relay's call ratio (computed)"}


def resolve(path: str) -> str:
    """A relative path missing from the working directory but present in the repository (the toy defaults)."""
    return str(ROOT / path) if not Path(path).exists() and (ROOT / path).exists() else str(path)


def parse_benchmark(spec: str) -> tuple[str, str]:
    """(column label, registry name or file) from `gsm8k`, `path/to/file.jsonl` or `LABEL=path`."""
    if spec in REGISTRY:
        return spec, spec
    label, sep, path = spec.partition("=")
    return (label, resolve(path)) if sep else (Path(spec).stem, resolve(spec))


def teacher_spans(records) -> list[int]:
    """Lengths of the maximal runs of teacher tokens in the responses: one per executed call."""
    return [len(list(run)) for r in records for author, run in groupby(r["authors"]) if author == TEACHER]


def router_rows(results: dict, labels: list[str]) -> dict:
    """Per benchmark, the query-level router at the relay's call ratio (Fig. 1's resource-matched point)."""
    rows = {}
    for b in labels:
        s, t, ratio = results["student"][b]["accuracy"], results["teacher"][b]["accuracy"], results["relay"][b]["call_ratio"]
        rows[b] = {"accuracy": s + ratio * (t - s), "call_ratio": ratio}
    return rows


def router_summary(results: dict, labels: list[str]) -> tuple[dict, str]:
    """random_router on the benchmark averages (accuracies in points), as the abstract does with Table 1."""
    mean = lambda mode, key, scale: sum(scale * results[mode][b][key] for b in labels) / len(labels)  # noqa: E731
    s, t, relay = (mean(m, "accuracy", 100) for m in ("student", "teacher", "relay"))
    ratio = mean("relay", "call_ratio", 1)
    r = {"acc_student": s, "acc_teacher": t, "acc_relay": relay, "relay_call_ratio": ratio,
         **random_router(s, t, relay, ratio)}
    head = (f"Random router (paper Fig. 1; averages): student {s:.2f}, teacher {t:.2f}, "
            f"relay {relay:.2f} at a {ratio:.2%} call ratio.")
    if t <= s:
        return r, head + " The teacher is not more accurate than the student: the comparison is undefined."
    if relay <= s:
        return r, head + " The relay is not more accurate than the student alone: no cost reduction to report."
    p = r["matched_teacher_share"]
    matched = (f"Performance-matched: a router needs {p:.1%} of the questions on the teacher to reach {relay:.2f}; "
               f"the relay's {ratio:.2%} is a {r['cost_reduction']:.1%} cost reduction." if p <= 1 else
               "The relay beats the teacher alone: no router between them reaches it.")
    return r, (f"{head}\n{matched}\nResource-matched: at {ratio:.2%} of the questions on the teacher a router reaches "
               f"{r['router_accuracy_at_equal_cost']:.2f}; the relay leads by {r['margin']:.2f} points.")


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", nargs="+", default=["toy=data/toy/test.jsonl"],
                    help=f"registry names ({', '.join(REGISTRY)}), files, or LABEL=FILE (default: the toy test set)")
    ap.add_argument("--limit", type=int, help="only the first N questions of each benchmark (all are validated)")
    ap.add_argument("--truncate-prompts", action="store_true",
                    help="cut a question longer than the models' context instead of refusing the run")
    ap.add_argument("--student", default="weights/toy/relay-student", help="the relay student (dir or hub id)")
    ap.add_argument("--base-student", default="weights/toy/student", help="the untrained student (dir or hub id)")
    ap.add_argument("--teacher", default="weights/toy/teacher", help="the teacher (dir or hub id)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="runs (default all)")
    ap.add_argument("--fixed-k", type=int, default=20, help="n of every call in the fixed mode (paper Table 5)")
    ap.add_argument("--max-call-tokens", type=int,
                    help="cap every call's n (D2), as in training with train_grpo.py --max-call-tokens (default: none)")
    ap.add_argument("--random-k", type=int, help="teacher span of the random caller (default: relay's mean span)")
    ap.add_argument("--samples", type=int, default=1, help="responses per question: avg@k (default 1: pass@1)")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    ap.add_argument("--teacher-temperature", type=float, default=0.0,
                    help="the teacher's temperature inside the relay (default 0: greedy, D4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=128,
                    help="response budget, teacher tokens included (D7); the paper's is 8192; default 128 (toy)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=Path("runs/eval/results.json"), help="JSON results")
    ap.add_argument("--no-records", action="store_true", help="keep only the numbers in the JSON")
    args = ap.parse_args(argv)
    for flag in ("limit", "samples", "batch_size", "max_new_tokens"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.samples > 1 and args.temperature <= 0:
        ap.error("--samples > 1 (avg@k) needs --temperature > 0: greedy samples are identical")
    if "random-caller" in args.modes and "relay" not in args.modes:
        ap.error("random-caller matches the relay's call ratio: add relay to --modes")
    args.modes = [m for m in MODES if m in args.modes]  # relay before random-caller, whatever the order given
    return args


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    benches = dict(parse_benchmark(spec) for spec in args.benchmarks)
    if len(benches) != len(args.benchmarks):
        raise UserError("two benchmarks share a column label: name them LABEL=FILE")
    questions = {label: load_benchmark(src, args.limit) for label, src in benches.items()}  # fail before any model
    paths = {k: resolve(getattr(args, k)) for k in ("student", "base_student", "teacher")}
    need = {"base_student": "student" in args.modes, "teacher": args.modes != ["student"],
            "student": any(m not in ("student", "teacher") for m in args.modes)}
    dtype = getattr(torch, args.dtype)
    try:  # headers only: every checkpoint is valid before any model loads
        metas = [check_checkpoint(p, tokenizer=False)[1] for k, p in paths.items() if need[k]]
    except FileNotFoundError as e:
        raise UserError(f"{e} (the toy relay student comes from `python scripts/train_grpo.py --export "
                        "weights/toy/relay-student`; or pass --student / --base-student / --teacher)") from None
    tokenizer = load_tokenizer(paths["student"] if need["student"] else paths["base_student"] if need["base_student"]
                               else paths["teacher"])
    context = min(m.config.max_position_embeddings for m in metas)
    questions = {b: fit_context(q, tokenizer, args.max_new_tokens, context, benches[b], args.truncate_prompts)
                 for b, q in questions.items()}
    models = {k: load_model(p, device=args.device, dtype=dtype) for k, p in paths.items() if need[k]}
    decoding = "greedy pass@1" if args.samples == 1 else f"avg@{args.samples} at temperature {args.temperature}"
    print(f"{len(questions)} benchmark(s) ({', '.join(f'{b}: {len(q)}' for b, q in questions.items())} questions), "
          f"{decoding}, {args.max_new_tokens} response tokens, runs: {', '.join(args.modes)}")

    results = {m: {} for m in args.modes}
    runs = [(b, m) for b in questions for m in args.modes]
    for bench, mode in tqdm(runs, desc="evaluate", unit="run"):
        extra = {}
        if mode == "random-caller":
            spans = teacher_spans(results["relay"][bench]["records"])
            k = args.random_k or (max(1, round(sum(spans) / len(spans))) if spans else args.fixed_k)
            extra["random_calls"] = matched_random_calls(results["relay"][bench]["call_ratio"], k)
        student = models.get("base_student") if mode == "student" else models.get("student")
        t0 = time.time()
        r = evaluate(mode, student, models.get("teacher"), tokenizer, questions[bench], max_new_tokens=args.max_new_tokens,
                     batch_size=args.batch_size, samples=args.samples, temperature=args.temperature,
                     teacher_temperature=args.teacher_temperature, seed=args.seed,
                     fixed_call_tokens=args.fixed_k, max_call_tokens=args.max_call_tokens, desc=f"{bench}/{mode}",
                     **extra)
        r["seconds"] = time.time() - t0
        if extra:
            r["random_calls"] = list(extra["random_calls"])
        results[mode][bench] = r
        tqdm.write(f"{bench:>12} {mode:>13}: accuracy {r['accuracy']:7.2%}  call ratio {r['call_ratio']:7.2%}  "
                   f"({r['seconds']:.1f} s)")

    labels = list(questions)
    table_rows = dict(results)
    have_router = all(m in results for m in ("student", "teacher", "relay"))
    if have_router:
        table_rows["random-router"] = router_rows(results, labels)
    table = markdown_table(table_rows, labels)
    print(f"\n{table}\n")
    print("\n".join(f"- {m}: {ROW_NAMES[m]}" for m in table_rows) + f"\n- decoding: {decoding}; accuracy in %, "
          "Avg. Call Ratio = mean over benchmarks of Σ teacher tokens / Σ response tokens (D6)\n"
          f"- answers checked by {checker_name()} (D13)")
    router = None
    if have_router:
        router, text = router_summary(results, labels)
        print("\n" + text)

    if args.no_records:
        for per_bench in results.values():
            for r in per_bench.values():
                r.pop("records", None)
    out = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} | paths,
           "benchmarks": {b: str(src) for b, src in benches.items()}, "decoding": decoding, "checker": checker_name(), "table": table,
           "random_router": router, "results": results, "seconds": time.time() - t_start}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False))
    tmp.replace(args.out)  # never a half-written results file
    print(f"\nwrote {args.out}; total {out['seconds']:.0f} s")


if __name__ == "__main__":
    run_script(main)
