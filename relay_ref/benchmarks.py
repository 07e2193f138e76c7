"""The paper's math benchmarks and its training set as `{"problem", "answer"}` rows (paper §4.2, §4.3; design.md D14).

`load_benchmark(name_or_path, limit=None)` reads a local .jsonl, .json (a list of objects), .csv or .parquet
(pyarrow) file, or a `REGISTRY` name through `huggingface_hub.hf_hub_download(..., repo_type="dataset")`.
GSM8K: `question`, the answer after `####` without commas. OlympiadBench: `question`, `final_answer[0]`.
MATH-500, Minerva, AIME: `problem`/`answer` in any usual capitalisation (simple-evals' CSV has `Question`/
`Answer`), or Minerva's last `\\boxed{}` of `solution`; a local file's rows are recognised by their fields.
The release reads MATH-500 from simple-evals' CSV; the hub's HuggingFaceH4/MATH-500 holds the same 500
problems. The zwhe99 shard names, unverifiable offline, are matched against the repo's file list. A row
without a non-empty problem and answer, or a file with no row, is an error naming the file (and row), never
a silent skip. AIME's avg@32 is a sampling setting of the evaluation, not of the data.
"""
# `dapo` is the paper's training set (DAPO-Math-17k, §4.3); `prepare` turns any of these into training rows.

import csv
import fnmatch
import io
import json
from pathlib import Path

from .answers import extract_boxed, is_scorable
from .checkpoint import from_hub
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


DAPO_HEAD, DAPO_TAIL = "Solve the following math problem step by step.", '\n\nRemember to put your answer on its own line'


# DAPO-Math-17k: the user turn of the chat `prompt` is a fixed instruction, a blank line, the problem and a
# reminder to end with "Answer:"; the gold is `reward_model.ground_truth`.
def read_dapo(row):
    text = next((t.get("content") for t in _pick(row, "prompt") if isinstance(t, dict) and t.get("role") == "user"), None)
    problem = text.partition("\n\n")[2].split(DAPO_TAIL)[0] if str(text).startswith(DAPO_HEAD) else text
    return problem, _pick(_pick(row, "reward_model"), "ground_truth")


def read_any(row):
    gsm8k = "question" in row and "####" in str(row.get("answer"))
    return (read_dapo if "reward_model" in row else read_olympiad if "final_answer" in row else
            read_gsm8k if gsm8k else read_plain)(row)


REGISTRY = {  # name -> (hub dataset repo, file, reader)
    "gsm8k": ("openai/gsm8k", "main/test-00000-of-00001.parquet", read_gsm8k),
    "math500": ("HuggingFaceH4/MATH-500", "test.jsonl", read_plain),
    "minerva": ("zwhe99/simplerl-minerva-math", "*test*", read_plain),
    "olympiad": ("zwhe99/simplerl-OlympiadBench", "*test*", read_olympiad),
    "aime24": ("HuggingFaceH4/aime_2024", "data/train-00000-of-00001.parquet", read_plain),
    "aime25": ("yentinglin/aime_2025", "data/train-00000-of-00001-243207c6c994e1bd.parquet", read_plain),
    "dapo": ("BytedTsinghua-SIA/DAPO-Math-17k", "data/dapo-math-17k.parquet", read_dapo),  # training (§4.3)
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
        path, reader = fetch(str(name_or_path)), REGISTRY[str(name_or_path)][2]
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


# A REGISTRY dataset's file, downloaded into (or found in) the huggingface_hub cache.
def fetch(name: str) -> Path:
    import huggingface_hub
    repo, file, _ = REGISTRY[name]

    def download(file=file):
        if "*" in file:  # keep the pattern if nothing matches: the download then fails naming it
            file = min((f for f in huggingface_hub.list_repo_files(repo, repo_type="dataset")
                        if fnmatch.fnmatch(f, file) and f.endswith(SUFFIXES)), default=file)
        return huggingface_hub.hf_hub_download(repo_id=repo, filename=file, repo_type="dataset")
    return Path(from_hub(repo, download, f"download {file} from it and pass the file's path"))


def prepare(name_or_path, limit: int | None = None) -> tuple[list[dict], dict]:
    """(rows, counts): the rows less unreadable golds and repeated problems, and how many of each went."""
    # An unscorable group teaches nothing (design.md GRPO (b)); DAPO-Math's file holds each problem ~100 times.
    rows = load_benchmark(name_or_path, limit)
    readable, seen = [r for r in rows if is_scorable(r["answer"])], {}
    kept = [seen.setdefault(r["problem"], r) for r in readable if r["problem"] not in seen]  # first of each, in order
    return kept, {"read": len(rows), "unreadable gold": len(rows) - len(readable),
                  "duplicates": len(readable) - len(kept), "kept": len(kept)}
