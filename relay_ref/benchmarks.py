"""The paper's math benchmarks as `{"problem", "answer"}` rows (paper §4.2, Table 1).

`load_benchmark(name_or_path, limit=None)` reads a local .jsonl, .json (a list of objects), .csv or .parquet
(with pyarrow) file, or a `REGISTRY` name through `huggingface_hub.hf_hub_download(..., repo_type="dataset")`.
GSM8K: `question`, the answer after `####` without commas. OlympiadBench: `question`, `final_answer[0]`.
MATH-500, Minerva, AIME: `problem`/`answer` in any usual capitalisation (simple-evals' CSV has `Question`/
`Answer`, some AIME sets `Problem`/`Answer`), or Minerva's last `\\boxed{}` of `solution`. A local file's rows
are recognised by their fields. The release reads MATH-500 from simple-evals' CSV, not on the hub; the hub's
HuggingFaceH4/MATH-500 holds the same 500 problems. The zwhe99 shard names, unverifiable offline, are matched
against the repo's file list. A row without a non-empty problem and answer is an error naming the file and
row, never a silent skip, and so is a file with no row. AIME's avg@32 is a sampling setting of the evaluation, not of the data.
"""
from __future__ import annotations

import csv
import fnmatch
import io
import json
from pathlib import Path

from .answers import extract_boxed
from .errors import UserError


def _pick(row, *keys):
    for key in (k for k in keys if row.get(k) is not None):
        return str(row[key]) if isinstance(row[key], (int, float)) else row[key]  # AIME answers may be integers
    raise ValueError(f"no field {' or '.join(map(repr, keys))} (fields: {', '.join(map(str, row))})")


def read_gsm8k(row):
    if "####" not in (answer := _pick(row, "answer")):
        raise ValueError("the GSM8K answer has no '#### <final answer>'")
    return _pick(row, "question"), answer.split("####")[-1].replace(",", "")


def read_olympiad(row):
    final = _pick(row, "final_answer")  # a list of accepted forms; the release takes the first
    return _pick(row, "question"), final if isinstance(final, str) else (list(final) or [None])[0]


def read_plain(row):
    problem = _pick(row, "problem", "Problem", "question", "Question")
    if row.get("answer") is None and row.get("Answer") is None and isinstance(row.get("solution"), str):
        return problem, extract_boxed(row["solution"])  # Minerva without an answer field
    return problem, _pick(row, "answer", "Answer")


def read_any(row):
    gsm8k = "question" in row and "####" in str(row.get("answer"))
    return (read_olympiad if "final_answer" in row else read_gsm8k if gsm8k else read_plain)(row)


REGISTRY = {  # name -> (hub dataset repo, file, reader)
    "gsm8k": ("openai/gsm8k", "main/test-00000-of-00001.parquet", read_gsm8k),
    "math500": ("HuggingFaceH4/MATH-500", "test.jsonl", read_plain),
    "minerva": ("zwhe99/simplerl-minerva-math", "*test*", read_plain),
    "olympiad": ("zwhe99/simplerl-OlympiadBench", "*test*", read_olympiad),
    "aime24": ("HuggingFaceH4/aime_2024", "data/train-00000-of-00001.parquet", read_plain),
    "aime25": ("yentinglin/aime_2025", "data/train-00000-of-00001-243207c6c994e1bd.parquet", read_plain),
}
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _rows(path: Path) -> list:
    """(where, row): "line N: " of a JSON-lines file (the row still JSON text), else "row N: " (1-based)."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
        rows = pq.read_table(path).to_pylist()
    elif path.suffix not in SUFFIXES:
        raise ValueError(f"unknown format (expected one of {', '.join(SUFFIXES)})")
    elif path.suffix == ".jsonl":
        lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        return [(f"line {i}: ", line) for i, line in lines if line.strip()]
    else:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline=""))) if path.suffix == ".csv" else json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON list of rows, got {type(rows).__name__}")
    return [(f"row {i}: ", row) for i, row in enumerate(rows, 1)]


def load_benchmark(name_or_path, limit: int | None = None) -> list[dict]:
    """The first `limit` (default all) rows as `{"problem", "answer"}` strings, in file order."""
    path, reader = Path(name_or_path), read_any
    if str(name_or_path) in REGISTRY:
        import huggingface_hub
        repo, file, reader = REGISTRY[str(name_or_path)]
        if "*" in file:  # keep the pattern if nothing matches: the download then fails naming it
            file = min((f for f in huggingface_hub.list_repo_files(repo, repo_type="dataset")
                        if fnmatch.fnmatch(f, file) and f.endswith(SUFFIXES)), default=file)
        path = Path(huggingface_hub.hf_hub_download(repo_id=repo, filename=file, repo_type="dataset"))
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such file, and not a benchmark name ({', '.join(REGISTRY)})")
    out, where = [], ""
    try:  # every row is validated, also past `limit`: a bad file fails before any model is loaded
        for where, row in _rows(path):
            row = json.loads(row) if path.suffix == ".jsonl" else row
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            problem, answer = reader(row)
            if not all(isinstance(v, str) and v.strip() for v in (problem, answer)):
                raise ValueError(f"no usable problem and answer (got {problem!r}, {answer!r})")
            out.append({"problem": problem, "answer": answer.strip()})
    except ValueError as e:  # also a UnicodeDecodeError: "'utf-8' codec can't decode byte 0xff in position 3"
        raise UserError(f"{path}: {where}{'invalid JSON: ' * isinstance(e, json.JSONDecodeError)}{e}") from None
    if not out[:limit]:
        raise UserError(f"{path}: no questions (limit {limit})")
    return out[:limit]
