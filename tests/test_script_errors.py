"""Every script ends a user error with one line on stderr and exit code 2, no traceback, nothing written.

One subprocess per script (a python start costs seconds): the in-process behaviour of each check is in
test_hardening.py; here only the exit code, the single stderr line and the untouched output are pinned.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def case_train_grpo(tmp):  # an empty training file (it used to hang or die in the SFT scheduler)
    data = tmp / "train.jsonl"
    data.write_text("\n \n")
    return ["train_grpo.py", "--train-data", str(data), "--run-dir", str(tmp / "run")], [str(data), "no questions"]


def case_evaluate(tmp):  # a question longer than the toy models' 512-token context
    bench = tmp / "long.jsonl"
    bench.write_text(json.dumps({"problem": "1+" * 25000 + "1", "answer": "25001"}) + "\n")
    return (["evaluate.py", "--benchmarks", str(bench), "--modes", "student", "--out", str(tmp / "run/out.json")],
            [str(bench), "question 1", "512-token context"])


def case_filter_data(tmp):  # non-UTF-8 bytes on line 2
    data = tmp / "q.jsonl"
    data.write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "\xff\xfe", "answer": "1"}\n')
    return ["filter_data.py", str(data), str(tmp / "run/out.jsonl")], [f"{data}:2", "not UTF-8"]


def case_make_warmup(tmp):  # a torn JSON line
    data = tmp / "q.jsonl"
    data.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+\n')
    return ["make_warmup.py", str(data), str(tmp / "run/warmup.jsonl")], [f"{data}:2", "invalid JSON"]


def case_train_sft(tmp):  # warm-up rows without their token ids
    data = tmp / "warmup.jsonl"
    data.write_text('{"prompt": "1+1"}\n')
    return ["train_sft.py", str(data), str(tmp / "run")], [f"{data}:1", "prompt_ids"]


def case_show(tmp):  # a results file that is not there
    missing = tmp / "results.json"
    return ["show.py", "--results", str(missing), "--html", str(tmp / "run/show.html")], [str(missing)]


SLOW = pytest.mark.slow  # the same helper as the three above; run with `pytest -m slow`


@pytest.mark.parametrize("case", [case_train_grpo, case_evaluate, case_filter_data, pytest.param(case_make_warmup, marks=SLOW),
                                  pytest.param(case_train_sft, marks=SLOW), pytest.param(case_show, marks=SLOW)],
                         ids=lambda c: c.__name__[5:])
def test_a_user_error_is_one_stderr_line_and_exit_code_2_with_nothing_written(tmp_path, case):
    argv, needles = case(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / argv[0]), *argv[1:]], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (tmp_path / "run").exists()  # nothing was written
