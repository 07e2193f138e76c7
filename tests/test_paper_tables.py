"""scripts/paper_tables.py: the paper's Tables 1, 3, 4 and 5 on the toy world, resumable run by run."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay_ref.errors import UserError
from relay_ref.run_state import INFO_FILE, STATE_FILE
from scripts.paper_tables import K_VALUES, prepare_run_dir

ROOT = Path(__file__).resolve().parent.parent
TABLE_ROWS = {"### Table 1": 5, "### Table 3": 4, "### Table 4": 5, "### Table 5": len(K_VALUES) + 1}


def run_tiny(out: Path, *flags):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts/paper_tables.py"), "--tiny", "--out", str(out), *flags],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def tables(text: str) -> dict:
    """Each table's heading -> its body rows (the lines after the header and the |---| line)."""
    found, heading = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            heading = line
            found[heading] = []
        elif heading and line.startswith("|") and not line.startswith("|---"):
            found[heading].append([c.strip() for c in line.strip("|").split("|")])
    return {h: rows[1:] for h, rows in found.items() if rows}


def test_tiny_run_prints_the_four_tables_and_a_second_call_reruns_nothing(tmp_path):
    first = run_tiny(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    found = tables(first.stdout)
    for prefix, n_rows in TABLE_ROWS.items():
        (heading,) = [h for h in found if h.startswith(prefix)]
        assert len(found[heading]) == n_rows, (heading, found[heading])
    assert (tmp_path / "tables.md").read_text() in first.stdout
    (table1,) = [rows for h, rows in found.items() if h.startswith("### Table 1")]
    t1 = {row[0]: row for row in table1}
    # The two tiny variants ran (one seed: a mean and no spread); the others are marked, not invented.
    assert t1["RelayLLM (Difficulty-Aware)"][1].endswith("± –") and t1["GRPO (calls banned)"][1].endswith("± –")
    assert t1["RelayLLM (Simple)"][1] == "not run"
    assert t1["RelayLLM (Difficulty-Aware)"][3] == "49.52"  # the paper's number beside the toy's
    runs = [tmp_path / "runs" / "relay-seed0", tmp_path / "runs" / "grpo-seed0"]
    for run in runs:
        assert (run / "metrics.jsonl").read_text().count("\n") == 2  # --tiny trains 2 steps
        assert json.loads((run / "paper_eval.json").read_text())
    made = {p: p.stat().st_mtime_ns for run in runs for p in (run / "paper_eval.json", run / "final" / "model.safetensors")}

    second = run_tiny(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    for name in ("reference", "relay-seed0", "grpo-seed0"):
        assert f"reused: {name}" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in made} == made
    assert tables(second.stdout) == found
    sittings = [json.loads(line) for line in (tmp_path / "wall_time.jsonl").read_text().splitlines()]
    assert len(sittings) == 2 and sittings[0]["seconds"] > 0  # each call adds its wall time to the ledger
    assert "3 of 3 jobs finished; wall time" in second.stdout and not (tmp_path / "paper_tables.lock").exists()

    shutil.rmtree(runs[1])  # --report: the tables from what is finished, and no work started
    report = run_tiny(tmp_path, "--report")
    assert report.returncode == 0 and not runs[1].exists(), report.stderr[-3000:]
    assert "2 of 3 jobs finished (a partial report" in report.stdout
    t1 = {row[0]: row for row in tables(report.stdout)[next(h for h in found if h.startswith("### Table 1"))]}
    assert t1["GRPO (calls banned)"][1] == "not run" and t1["RelayLLM (Difficulty-Aware)"][1].endswith("± –")

    (tmp_path / "paper_tables.lock").write_text(str(os.getpid()))  # a live invocation holds this --out
    refused = run_tiny(tmp_path)
    assert refused.returncode == 2 and "is running on this --out" in refused.stderr and not runs[1].exists()
    assert len(refused.stderr.strip().splitlines()) == 1
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "paper_tables.lock").write_text(dead.stdout.strip())  # left by a killed invocation: stale
    assert run_tiny(tmp_path).returncode == 0 and (runs[1] / "paper_eval.json").exists()


def test_a_run_dir_with_a_checkpoint_resumes_and_one_without_starts_afresh(tmp_path):
    train = ["python", "scripts/train_grpo.py", "--run-dir", str(tmp_path / "run")]
    run = tmp_path / "run"
    (run / "checkpoint.old").mkdir(parents=True)  # a crash between run_state's two renames left only .old
    for name in (STATE_FILE, INFO_FILE):
        (run / "checkpoint.old" / name).write_bytes(b"")
    assert prepare_run_dir(run, train) == train + ["--resume"]
    shutil.rmtree(run / "checkpoint.old")  # killed before its first checkpoint
    (run / "warmup_data.jsonl").write_text("{}\n")
    assert prepare_run_dir(run, train) == train
    assert not (run / "warmup_data.jsonl").exists()  # cleared, so train_grpo.py starts clean
    with pytest.raises(UserError, match="other flags"):
        prepare_run_dir(run, train + ["--reward", "simple"])


def test_the_grpo_baseline_switch_bans_calls_in_the_rollouts():
    """Table 1's GRPO row: GRPOConfig(teacher_free=True) samples with the command tokens banned (§5.3's mask)."""
    import torch
    from relay_ref.checkpoint import load_model
    from relay_ref.commands import COMMAND, TEACHER
    from relay_ref.grpo import GRPOConfig, rollout
    from relay_ref.tokenizer import load_tokenizer
    torch.set_num_threads(1)
    tok = load_tokenizer(ROOT / "weights/toy/student")
    student, teacher = load_model(ROOT / "weights/toy/relay-student"), load_model(ROOT / "weights/toy/teacher")
    questions = [{"problem": f"Compute {a}*{d}+{t}.", "answer": str(a * d + t)} for a, d, t in
                 ((47, 8, 30), (68, 7, 20), (93, 6, 10), (56, 9, 40))]
    seen = {}
    for free in (False, True):
        cfg = GRPOConfig(group_size=4, max_new_tokens=64, temperature=0.6, teacher_free=free, seed=1)
        batch = rollout(student, teacher, tok, questions, cfg, step=0)
        seen[free] = batch["metrics"]["call_ratio"], batch["metrics"]["calls_per_response"]
    assert seen[False][0] > 0  # the shipped relay student calls on these products...
    assert seen[True] == (0.0, 0.0)  # ...and never once its commands are banned
