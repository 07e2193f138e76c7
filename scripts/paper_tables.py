"""The paper's Tables 1, 3, 4 and 5 in miniature: every variant trained on the toy world, over seeds.

    python scripts/paper_tables.py                       # 9 variants x 3 seeds, 2 runs side by side
    python scripts/paper_tables.py --seeds 5 --jobs 2 --out runs/paper_tables
    python scripts/paper_tables.py --tiny --out /tmp/t   # two variants, one seed, a few steps (the CI test)
    python scripts/paper_tables.py --report              # the tables from the runs finished so far; no work

Each run is `scripts/train_grpo.py` on the toy preset from the shipped toy student and teacher, with exactly
the one switch its row names (the toy preset itself is the "RelayLLM (Difficulty-Aware)" row). All variants
of a seed share that seed's warm-up (`--warmup DIR/warmup/seed<s>`, made by the toy-preset run), so Table 3's
rows differ from the preset only after the warm-up, as in the paper. Runs go side by side as subprocesses
with one thread each. After training, this script evaluates each run's final student greedily on the toy
test set in the modes its tables need, and the base student and the teacher once.

Resumable: a run whose DIR/runs/<variant>-seed<s>/paper_eval.json exists is not rerun; a killed run resumes
from its checkpoint (`train_grpo.py --resume`), or starts afresh if it died before its first checkpoint.
Writes, under DIR: runs/*/metrics.jsonl (train_grpo's per-step metrics), runs/*/paper_eval.json (accuracy,
call ratio and per-question correctness of each evaluation mode), reference.json (base student and
teacher), train_filtered.jsonl (D12 on the toy training set), tables.md (also printed) and
accuracy_vs_calls.png (with the optional `plot` extra, matplotlib).

One invocation at a time per DIR (DIR/paper_tables.lock holds its pid; a second one is refused, since two
would train the same run). Each invocation adds its wall time to DIR/wall_time.jsonl, so a run made over
several sittings still reports its total.

Each cell is the mean +- the standard deviation over seeds (n - 1 in the denominator); the paper's
Qwen3-1.7B numbers (six-benchmark averages, teacher Qwen3-8B) stand beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from train_grpo import PRESETS  # noqa: E402  (the presets are the toy run's definition)

from relay_ref.errors import ArgumentParser, UserError, run_script  # noqa: E402

TOY = PRESETS["toy"]
FILTER_SAMPLES, FILTER_THRESHOLD = 10, 0.5  # D12
FILTER_TEMPERATURE, FILTER_TOP_P = 0.7, 0.95  # the release's filter sampling (scripts/filter_data.py)


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    flags: tuple = ()  # train_grpo.py flags on top of the toy preset: the row's one switch
    modes: tuple = ("relay",)  # evaluation modes of the final student
    fixed_k: int | None = None
    filtered: bool = False  # trains on DIR/train_filtered.jsonl (D12) instead of data/toy/train.jsonl


K_VALUES = (2, 5, 10)  # the paper's 20 / 100 / 500 on responses ~100x longer than the toy's ~55 tokens
VARIANTS = [
    Variant("relay", "RelayLLM (Difficulty-Aware), the toy preset", modes=("relay", "teacher-free")),
    Variant("simple", "RelayLLM (Simple, Eq. 3)", ("--reward", "simple"), modes=("relay", "teacher-free")),
    Variant("grpo", "GRPO (calls banned)", ("--teacher-free", "true", "--reward", "simple"), modes=("teacher-free",)),
    Variant("filtered", "with data filtering (D12)", filtered=True),
    Variant("no_indep", "w/o independence incentive (1.5 -> 1)", ("--independence-bonus", "1.0")),
    Variant("exploration", "with exploration reward", ("--exploration", "true")),
    *[Variant(f"fixed{k}", f"Fixed-{k}", ("--fixed-call-tokens", str(k)), modes=("fixed",), fixed_k=k)
      for k in K_VALUES],
]
TINY_VARIANTS = ("relay", "grpo")
TINY_TRAIN = ("--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--rollout-slots", "4",
              "--micro-batch", "4", "--save-every", "1", "--max-new-tokens", "48", "--sft-epochs", "1")

# The paper's Qwen3-1.7B numbers (teacher Qwen3-8B): accuracy as six-benchmark averages (%), call ratio (%).
PAPER_T1 = {"base": (42.50, None), "grpo": (44.06, None), "simple": (49.30, 0.43), "relay": (49.52, 1.07),
            "teacher": (54.12, 100.0)}
PAPER_ROUTER = (98.2, 6.9)  # Fig. 1: cost reduction (%) at matched accuracy, margin (points) at matched cost
PAPER_T3 = {"relay": (49.52, 1.07), "no_filter": (48.76, 3.30), "no_indep": (49.34, 4.10), "no_explor": (47.56, 0.65)}
PAPER_T4 = {"grpo": (59.51, 13.18), "simple/relay": (66.03, 15.84), "simple/teacher-free": (61.12, 13.13),
            "relay/relay": (66.78, 15.00), "relay/teacher-free": (60.26, 11.93)}
PAPER_T5 = {"fixed2": ("Fixed-20", 49.41, 1.32), "fixed5": ("Fixed-100", 49.56, 2.87),
            "fixed10": ("Fixed-500", 51.17, 5.37), "relay": ("RelayLLM", 49.52, 1.07)}


@dataclass
class Job:
    name: str
    commands: list  # argv lists, run one after another; the job is done when `done` exists
    done: Path
    log: Path
    needs: tuple = ()  # names of jobs that must finish first
    fresh: Path | None = None  # a run dir to check before training (resume it or start it afresh)


def train_argv(v: Variant, seed: int, out: Path, tiny: bool) -> list:
    run_dir = out / "runs" / f"{v.name}-seed{seed}"
    argv = [sys.executable, str(ROOT / "scripts/train_grpo.py"), "--run-dir", str(run_dir),
            "--warmup", str(out / "warmup" / f"seed{seed}"), "--seed", str(seed), "--skip-eval", *v.flags]
    if v.filtered or tiny:
        argv += ["--train-data", str(out / "train_filtered.jsonl" if v.filtered else out / "tiny_train.jsonl")]
    return argv + (list(TINY_TRAIN) if tiny else [])


def make_jobs(variants, seeds, out: Path, tiny: bool, eval_limit) -> list[Job]:
    me = [sys.executable, str(Path(__file__).resolve()), "--out", str(out)] + (["--tiny"] if tiny else [])
    lim = ["--eval-limit", str(eval_limit)] if eval_limit else []
    jobs = [Job("reference", [me + ["--evaluate-reference"] + lim], out / "reference.json", out / "reference.log")]
    if any(v.filtered for v in variants):
        filt = [sys.executable, str(ROOT / "scripts/filter_data.py"), str(TOY["train_data"]),
                str(out / "train_filtered.jsonl"), "--teacher", str(TOY["teacher"]), "--samples", str(FILTER_SAMPLES),
                "--threshold", str(FILTER_THRESHOLD), "--temperature", str(FILTER_TEMPERATURE), "--top-p",
                str(FILTER_TOP_P), "--max-new-tokens", str(TOY["grpo"]["max_new_tokens"]), "--batch-size", "256"]
        jobs.append(Job("filter", [filt], out / "train_filtered.jsonl", out / "filter.log"))
    for seed in seeds:
        for v in variants:
            run_dir = out / "runs" / f"{v.name}-seed{seed}"
            needs = (("filter",) if v.filtered else ()) + (() if v.name == "relay" else (f"relay-seed{seed}",))
            ev = me + ["--evaluate-run", str(run_dir), "--variant", v.name] + lim
            jobs.append(Job(f"{v.name}-seed{seed}", [train_argv(v, seed, out, tiny), ev], run_dir / "paper_eval.json",
                            run_dir / "paper_tables.log", needs, run_dir))
    return jobs


def flags_record(run_dir: Path, train: list) -> list:
    """The train command without the interpreter, --out as DIR, the repository as ROOT: either may move."""
    return [a.replace(str(run_dir.parent.parent), "DIR").replace(str(ROOT), "ROOT") for a in train[1:]]


def check_flags(run_dir: Path, train: list) -> None:
    record = run_dir / "paper_tables_args.json"
    if record.exists() and json.loads(record.read_text()) != flags_record(run_dir, train):
        raise UserError(f"{run_dir} was made with other flags ({record}); use another --out")


def prepare_run_dir(run_dir: Path, train: list) -> list:
    from relay_ref.run_state import find_checkpoint
    """The train command for this run dir: --resume if a checkpoint survives, else a fresh start (the dir is
    cleared: it holds nothing a rerun would keep). Refuses a dir that was made with other flags."""
    check_flags(run_dir, train)
    if (run_dir / "final" / "model.safetensors").exists():
        return []  # trained; only the evaluation is missing
    if find_checkpoint(run_dir / "checkpoint"):  # train_grpo.py --resume also takes the .tmp/.old a crash left
        return train + ["--resume"]
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "paper_tables_args.json").write_text(json.dumps(flags_record(run_dir, train)))
    return train


def run_job(job: Job) -> int:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    commands = list(job.commands)
    if job.fresh is not None:
        train = prepare_run_dir(job.fresh, commands[0])
        commands = ([train] if train else []) + commands[1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with job.log.open("a") as log:
        for argv in commands:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
            if rc:
                return rc
    return 0


def run_all(jobs: list[Job], n_parallel: int) -> list[str]:
    """Runs the jobs that are not done, `n_parallel` at a time, in order as their needs finish."""
    from tqdm.auto import tqdm
    done = {j.name for j in jobs if j.done.exists()}
    for name in sorted(done):
        print(f"reused: {name}", file=sys.stderr)
    pending, running, failed = [j for j in jobs if j.name not in done], {}, []
    bar = tqdm(total=len(jobs), initial=len(done), desc="runs", unit="run")
    with ThreadPoolExecutor(n_parallel) as pool:
        while pending or running:
            for j in [j for j in pending if all(n in done for n in j.needs)][:n_parallel - len(running)]:
                pending.remove(j)
                running[pool.submit(run_job, j)] = j
            if not running:  # what is left needs a failed job
                failed += [f"{j.name} (needs {', '.join(j.needs)})" for j in pending]
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                j = running.pop(fut)
                if fut.result() == 0 and j.done.exists():
                    done.add(j.name)
                    bar.update(1)
                else:
                    failed.append(f"{j.name} (log: {j.log})")
    bar.close()
    return failed


# ---- evaluation workers (run as subprocesses, one thread each) ----

def test_questions(limit):
    from relay_ref.data import load_questions
    return load_questions(TOY["test_data"])[:limit]


def eval_max_new(tiny: bool) -> int:
    return int(TINY_TRAIN[TINY_TRAIN.index("--max-new-tokens") + 1]) if tiny else TOY["grpo"]["max_new_tokens"]


def summarize(r: dict) -> dict:
    return {"accuracy": r["accuracy"], "call_ratio": r["call_ratio"], "correct": [x["correct"] for x in r["records"]]}


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)  # the file's existence marks the job done, so it must appear whole


def evaluate_reference(args) -> None:
    from relay_ref.checkpoint import load_model
    from relay_ref.evaluation import evaluate
    from relay_ref.tokenizer import load_tokenizer
    tok, qs = load_tokenizer(TOY["student"]), test_questions(args.eval_limit)
    student, teacher = load_model(TOY["student"]), load_model(TOY["teacher"])
    out = {m: summarize(evaluate(m, student, teacher, tok, qs, max_new_tokens=eval_max_new(args.tiny)))
           for m in ("student", "teacher")}
    write_json(args.out / "reference.json", out)


def evaluate_run(args) -> None:
    from relay_ref.checkpoint import load_model
    from relay_ref.evaluation import evaluate
    from relay_ref.tokenizer import load_tokenizer
    v = {v.name: v for v in VARIANTS}[args.variant]
    tok, qs = load_tokenizer(TOY["student"]), test_questions(args.eval_limit)
    student, teacher = load_model(args.evaluate_run / "final"), load_model(TOY["teacher"])
    out = {m: summarize(evaluate(m, student, teacher, tok, qs, max_new_tokens=eval_max_new(args.tiny),
                                 fixed_call_tokens=v.fixed_k)) for m in v.modes}
    write_json(args.evaluate_run / "paper_eval.json", out)


# ---- tables ----

def cell(values, scale=100.0, digits=1, suffix="") -> str:
    if not values:
        return "not run"
    xs = [scale * x for x in values]
    std = f"{statistics.stdev(xs):.{digits}f}" if len(xs) > 1 else "–"
    return f"{statistics.mean(xs):.{digits}f} ± {std}{suffix}"


def paper(x, suffix="") -> str:
    return "–" if x is None else f"{x:.2f}{suffix}"


class Results:
    def __init__(self, out: Path, variants, seeds):
        self.ref = json.loads((out / "reference.json").read_text())
        self.evals = {}
        for v in variants:
            for s in seeds:
                path = out / "runs" / f"{v.name}-seed{s}" / "paper_eval.json"
                if path.exists():
                    self.evals[(v.name, s)] = json.loads(path.read_text())
        self.seeds = seeds

    def values(self, variant, mode, key="accuracy") -> list:
        return [self.evals[(variant, s)][mode][key] for s in self.seeds if (variant, s) in self.evals]

    def split(self, variant, mode, part) -> list:
        from relay_ref.evaluation import accuracy_by_difficulty
        base = self.ref["student"]["correct"]
        return [accuracy_by_difficulty(self.evals[(variant, s)][mode]["correct"], base)[part]
                for s in self.seeds if (variant, s) in self.evals]

    def paired(self, variant, key) -> list:  # variant minus the toy preset, seed by seed
        return [self.evals[(variant, s)]["relay"][key] - self.evals[("relay", s)]["relay"][key]
                for s in self.seeds if (variant, s) in self.evals and ("relay", s) in self.evals]


def table1(r: Results) -> list[str]:
    from relay_ref.evaluation import random_router
    acc_s, acc_t = r.ref["student"]["accuracy"], r.ref["teacher"]["accuracy"]
    rows = [("Base Model (student alone)", acc_s, None, "base"),
            ("GRPO (calls banned)", r.values("grpo", "teacher-free"), None, "grpo"),
            ("RelayLLM (Simple)", r.values("simple", "relay"), r.values("simple", "relay", "call_ratio"), "simple"),
            ("RelayLLM (Difficulty-Aware)", r.values("relay", "relay"), r.values("relay", "relay", "call_ratio"), "relay"),
            ("Teacher alone", acc_t, 1.0, "teacher")]
    lines = ["### Table 1: accuracy and call ratio", "",
             "| Method | Accuracy (%) | Call ratio (%) | Paper accuracy (%) | Paper call ratio (%) |",
             "|---|---|---|---|---|"]
    for label, accs, ratios, key in rows:
        pa, pr = PAPER_T1[key]
        acc = f"{100 * accs:.1f}" if isinstance(accs, float) else cell(accs)  # greedy, the same for every seed
        ratio = "–" if ratios is None else f"{100 * ratios:.2f}" if isinstance(ratios, float) else cell(ratios, digits=2)
        lines.append(f"| {label} | {acc} | {ratio} | {paper(pa)} | {paper(pr)} |")
    lines.append("")
    for name, label in (("relay", "Difficulty-Aware"), ("simple", "Simple")):
        routed = [random_router(acc_s, acc_t, a, c) for a, c in
                  zip(r.values(name, "relay"), r.values(name, "relay", "call_ratio"))]
        if not routed:
            continue
        # Matched in accuracy, the router needs a teacher share p* > 0: defined only where the relay beats the base.
        cheaper = [x["cost_reduction"] for x in routed if x["cost_reduction"] == x["cost_reduction"]]
        matched = (f"the relay is {cell(cheaper)}% cheaper" if cheaper else "no router matches the relay (it is "
                   "not above the base student)") + (f" (over the {len(cheaper)} of {len(routed)} seeds where the "
                                                    "relay beats the base student)" if 0 < len(cheaper) < len(routed) else "")
        lines.append(f"Random query router (Fig. 1), RelayLLM ({label}): at the relay's call ratio it reaches "
                     f"{cell([x['router_accuracy_at_equal_cost'] for x in routed])}% (the relay leads by "
                     f"{cell([x['margin'] for x in routed])} points); matched in accuracy, {matched}. "
                     f"Paper (Difficulty-Aware): {PAPER_ROUTER[0]}% cheaper, +{PAPER_ROUTER[1]} points.")
    return lines


def table3(r: Results) -> list[str]:
    (pa, pr), p = PAPER_T3["relay"], PAPER_T3
    rows = [("RelayLLM, the toy preset (no data filtering, no exploration reward)", "relay", None),
            ("with data filtering (D12: teacher pass rate >= 0.5)", "filtered",
             (pa - p["no_filter"][0], pr - p["no_filter"][1])),
            ("w/o independence incentive (1.5 -> 1)", "no_indep", (p["no_indep"][0] - pa, p["no_indep"][1] - pr)),
            ("with exploration reward (rho in Teacher-Unsolvable groups)", "exploration",
             (pa - p["no_explor"][0], pr - p["no_explor"][1]))]
    lines = ["### Table 3: ablations, each one switch away from the toy preset, on the same warm-up", "",
             "| Method | Accuracy (%) | Call ratio (%) | Δ accuracy (points) | Δ call ratio (points) | "
             "Paper Δ accuracy | Paper Δ call ratio |", "|---|---|---|---|---|---|---|"]
    for label, name, pd in rows:
        d_acc, d_ratio = ("–", "–") if pd is None else (cell(r.paired(name, "accuracy")),
                                                       cell(r.paired(name, "call_ratio"), digits=2))
        p_acc, p_ratio = ("–", "–") if pd is None else (f"{pd[0]:+.2f}", f"{pd[1]:+.2f}")
        lines.append(f"| {label} | {cell(r.values(name, 'relay'))} | "
                     f"{cell(r.values(name, 'relay', 'call_ratio'), digits=2)} | {d_acc} | {d_ratio} | {p_acc} | {p_ratio} |")
    lines += ["", "Δ: the row minus the toy preset, paired by seed (same warm-up). Paper Δ: the paper's Table 3 "
              "difference for the same switch in the same direction, from its rows "
              + ", ".join(f"{name} {a:.2f} / {c:.2f}%" for name, (a, c) in zip(
                  ("RelayLLM", "w/o Data Filtering", "w/o Indep. Incentive", "w/o Explor. Reward"), p.values())) + ". "
              "The toy preset already runs without the exploration reward and on unfiltered data, so those two rows "
              "switch them on."]
    return lines


def table4(r: Results) -> list[str]:
    n_easy = sum(r.ref["student"]["correct"])
    rows = [("GRPO Baseline", "grpo", "teacher-free", "grpo"),
            ("RelayLLM (Simple), standard inference", "simple", "relay", "simple/relay"),
            ("RelayLLM (Simple), w/o teacher", "simple", "teacher-free", "simple/teacher-free"),
            ("RelayLLM (Difficulty-Aware), standard inference", "relay", "relay", "relay/relay"),
            ("RelayLLM (Difficulty-Aware), w/o teacher", "relay", "teacher-free", "relay/teacher-free")]
    lines = ["### Table 4: teacher-free inference, easy and hard questions", "",
             "| Method | Easy (%) | Hard (%) | Paper easy (%) | Paper hard (%) |", "|---|---|---|---|---|"]
    for label, name, mode, key in rows:
        lines.append(f"| {label} | {cell(r.split(name, mode, 'easy'))} | {cell(r.split(name, mode, 'hard'))} | "
                     f"{PAPER_T4[key][0]:.2f} | {PAPER_T4[key][1]:.2f} |")
    lines += ["", f"Easy: the {n_easy} test questions the base student answers correctly (greedy); hard: the other "
              f"{len(r.ref['student']['correct']) - n_easy} (the base student scores 100% / 0% by construction). The "
              "paper's easy is the mean of Minerva, MATH-500, GSM8K and OlympiadBench, its hard the mean of AIME 2024/2025."]
    return lines


def table5(r: Results) -> list[str]:
    lines = ["### Table 5: fixed against dynamic call length, trained and evaluated each way", "",
             "| Method | Accuracy (%) | Call ratio (%) | Paper method | Paper accuracy (%) | Paper call ratio (%) |",
             "|---|---|---|---|---|---|"]
    for name in [f"fixed{k}" for k in K_VALUES] + ["relay"]:
        mode = "relay" if name == "relay" else "fixed"
        label = "RelayLLM (dynamic n)" if name == "relay" else f"Fixed-{name[5:]}"
        pm, pa, pr = PAPER_T5.get(name, ("–", None, None))
        lines.append(f"| {label} | {cell(r.values(name, mode))} | {cell(r.values(name, mode, 'call_ratio'), digits=2)} | "
                     f"{pm} | {paper(pa)} | {paper(pr)} |")
    lines += ["", f"k = {', '.join(map(str, K_VALUES))} scale the paper's 20 / 100 / 500 to the toy's ~55-token responses."]
    return lines


def departures(n_test: int) -> list[str]:
    """The toy preset's settings that differ from the paper preset's (PAPER_NOTES.md says why, one by one)."""
    from relay_ref.grpo import GRPOConfig
    toy, ppr, defaults = TOY, PRESETS["paper"], {f.name: f.default for f in fields(GRPOConfig)}
    # Where and how the runs compute (device, dtype, batching, checkpoints) is not a departure of the method.
    skip = ("grpo", "student", "teacher", "train_data", "test_data", "run_dir", "device", "dtype", "autocast",
            "rollout_slots", "micro_batch", "sft_micro_batch", "save_every")
    shown = {("steps", None): "one epoch", ("warmup_unsure_below", None): "anywhere"}
    lines = [f"- `{k}`: {toy[k]} (paper {shown.get((k, ppr.get(k)), ppr.get(k))})" for k in toy
             if k not in skip and toy[k] != ppr.get(k)]
    pg = {**defaults, **ppr["grpo"]}
    lines += [f"- GRPO `{k}`: {v} (paper {shown.get((k, pg[k]), pg[k])})" for k, v in toy["grpo"].items()
              if k not in skip and v != pg[k]]
    return ["### Departures of the toy preset from the paper", "",
            "The toy world: a 1M-parameter student and a 4.8M teacher on integer arithmetic, one test set of "
            f"{n_test} questions, answers by the last \\boxed{{}} (D13), greedy pass@1. The toy preset's settings that "
            "differ from the paper preset's (PAPER_NOTES.md gives the reason for each):", ""] + lines


def progress(out: Path, jobs) -> str:
    """How many runs are finished, and the wall time of every sitting so far (DIR/wall_time.jsonl)."""
    done = sum(j.done.exists() for j in jobs)
    ledger = out / "wall_time.jsonl"
    sittings = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    wall = sum(x["seconds"] for x in sittings)
    return (f"{done} of {len(jobs)} jobs finished" + ("" if done == len(jobs) else " (a partial report: missing "
            "runs read 'not run')") + f"; wall time {wall // 3600} h {wall % 3600 // 60} min over {len(sittings)} "
            f"sitting(s) with --jobs {', '.join(sorted({str(x['jobs']) for x in sittings})) or '?'}.")


class lock:
    """DIR/paper_tables.lock with this process's pid; refuses a DIR that a live invocation holds."""
    def __init__(self, out: Path):
        self.path = out / "paper_tables.lock"

    def __enter__(self):
        try:
            pid = int(self.path.read_text())
            os.kill(pid, 0)  # raises if no such process: a stale lock from a killed invocation
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pid = None
        if pid is not None and pid != os.getpid():
            raise UserError(f"{self.path}: paper_tables.py (pid {pid}) is running on this --out; wait for it "
                            f"or stop it (a killed run resumes)")
        self.path.write_text(str(os.getpid()))

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def render(r: Results, filtered_note: str, tiny: bool, status: str = "") -> str:
    parts = [f"# The paper's tables on the toy world ({len(r.seeds)} seed(s): {', '.join(map(str, r.seeds))})", "",
             *([status, ""] if status else []),
             *(["--tiny: two variants, a few steps and questions, to check the pipeline; the numbers mean nothing.",
                ""] if tiny else []),
             *table1(r), "", *table3(r), "", filtered_note, "", *table4(r), "", *table5(r), "",
             *departures(len(r.ref["student"]["correct"]))]
    return "\n".join(parts) + "\n"


def filter_note(out: Path) -> str:
    path = out / "train_filtered.jsonl"
    if not path.exists():
        return "Data filtering: not run."
    kept = sum(1 for line in path.read_text().splitlines() if line.strip())
    total = sum(1 for line in Path(TOY["train_data"]).read_text().splitlines() if line.strip())
    return (f"Data filtering: the toy training set is not filtered; D12 with the toy teacher ({FILTER_SAMPLES} "
            f"samples per question at T {FILTER_TEMPERATURE}, top-p {FILTER_TOP_P}, keep pass rate >= "
            f"{FILTER_THRESHOLD}) keeps {kept} of "
            f"{total} questions, so the filtered row measures what removing those {total - kept} does.")


def figure(r: Results, variants, path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "figure skipped: matplotlib is not installed (pip install -e '.[plot]')"
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for i, v in enumerate(variants):
        mode = v.modes[0]
        accs, ratios = r.values(v.name, mode), r.values(v.name, mode, "call_ratio")
        if not accs:
            continue
        color = f"C{i % 10}"
        ax.scatter([100 * x for x in ratios], [100 * a for a in accs], color=color, alpha=0.5, s=18)
        ax.scatter([100 * statistics.mean(ratios)], [100 * statistics.mean(accs)], color=color, marker="X", s=90,
                   edgecolor="black", label=v.label if mode != "teacher-free" else v.label + " (no teacher)")
    for key, style in (("student", ":"), ("teacher", "--")):
        ax.axhline(100 * r.ref[key]["accuracy"], color="gray", linestyle=style, label=f"{key} alone")
    ax.set_xlabel("call ratio (% of response tokens written by the teacher)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Toy world: accuracy against call ratio (dots: seeds, X: mean)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"figure: {path}"


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    ap.add_argument("--out", type=Path, default=ROOT / "runs/paper_tables")
    ap.add_argument("--tiny", action="store_true", help="two variants, one seed, a few steps and questions (CI)")
    ap.add_argument("--eval-limit", type=int, help="evaluate on the first N test questions (default: all)")
    ap.add_argument("--report", action="store_true",
                    help="print the tables from the runs finished so far (cells of missing runs read 'not run')")
    ap.add_argument("--evaluate-reference", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--evaluate-run", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be at least 1")
    args.out = args.out.resolve()
    if args.tiny:
        args.eval_limit = args.eval_limit or 6
    if args.evaluate_reference:
        return evaluate_reference(args)
    if args.evaluate_run:
        return evaluate_run(args)

    variants = [v for v in VARIANTS if not args.tiny or v.name in TINY_VARIANTS]
    seeds = [0] if args.tiny else list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tiny and not (args.out / "tiny_train.jsonl").exists():
        from relay_ref.data import load_questions, save_jsonl
        save_jsonl(load_questions(TOY["train_data"])[:8], args.out / "tiny_train.jsonl")
    jobs = make_jobs(variants, seeds, args.out, args.tiny, args.eval_limit)
    for j in jobs:  # before anything starts: a dir made with other flags is refused, not mixed in
        if j.fresh is not None:
            check_flags(j.fresh, j.commands[0])
    if args.report:
        if not (args.out / "reference.json").exists():
            raise UserError(f"{args.out} has no finished runs yet (no reference.json)")
    else:
        with lock(args.out):
            t0 = time.time()
            try:
                failed = run_all(jobs, args.jobs)
            finally:  # a killed sitting still counts its time
                with (args.out / "wall_time.jsonl").open("a") as f:
                    f.write(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)),
                                        "seconds": round(time.time() - t0), "jobs": args.jobs}) + "\n")
        print(f"runs finished in {time.time() - t0:.0f} s", file=sys.stderr)
        if failed:
            sys.exit("failed: " + "; ".join(failed))
    results = Results(args.out, variants, seeds)
    text = render(results, filter_note(args.out), args.tiny, progress(args.out, jobs))
    (args.out / "tables.md").write_text(text)
    print(text)
    print(figure(results, variants, args.out / "accuracy_vs_calls.png"))


if __name__ == "__main__":
    run_script(main)
