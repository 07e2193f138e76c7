"""Question files, warm-up SFT example construction, and pass-rate filtering (paper §3.1, §3.2.2; D11, D12).

- `load_questions` / `save_jsonl`: JSON-lines files with one question per line, fields `problem` and
  `answer` (other fields are kept). A bad line is an error naming the file and line, never a silent skip.
- `fit_context`: refuse (or truncate) a question whose prompt plus response budget exceeds the context.
- `insert_commands`: the D11 warm-up construction: random commands `<call>n</call>` inserted into the vanilla
  student's own sample, whose tokens stay untouched and in order (the continuation after a command is the
  student's own, which the paper accepts because the warm-up only teaches the command's syntax).
- `keep_by_pass_rate`: D12, keep the questions the teacher solves in at least half of its samples.
The model-driven steps (sampling the base responses, the teacher's samples) live in scripts.
"""

import json
import os
import random
import sys
import tempfile
from pathlib import Path

from .answers import is_scorable
from .commands import CommandTokens, format_call
from .errors import UserError


def load_questions(path) -> list[dict]:
    """Rows of a JSON-lines file; each needs a non-empty string `problem` and a string (or integer) `answer`.
    An integer answer is turned into its decimal string, since answers are compared as text (D13).
    Blank lines are skipped, a file with no question is refused, unscorable golds (`answers.is_scorable`) are
    counted in a warning on stderr. Raises FileNotFoundError or UserError("<file>:<line>: <what is wrong>")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"question file {path} does not exist")
    rows, unscorable = [], []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise UserError(f"{where}: not UTF-8 text (byte {raw[e.start]:#x} at column {e.start + 1})") from None
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
            if missing := [key for key in ("problem", "answer") if key not in row]:
                raise UserError(f"{where}: missing field {missing[0]!r}")
            if isinstance(row["answer"], int) and not isinstance(row["answer"], bool):
                row["answer"] = str(row["answer"])
            for key in ("problem", "answer"):
                if not isinstance(row[key], str):
                    raise UserError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
                if not row[key].strip():
                    raise UserError(f"{where}: field {key!r} is empty")
            rows.append(row)
            unscorable += [lineno] * (not is_scorable(row["answer"]))
    if not rows:
        raise UserError(f"{path}: no questions (the file is empty or blank)")
    if unscorable:
        print(f"warning: {path}: {len(unscorable)} gold answer(s) cannot be scored, lines {unscorable[:10]}", file=sys.stderr)
    return rows


def fit_context(questions, tokenizer, budget: int, context: int, source="questions", truncate=False) -> list[dict]:
    """The questions, if each chat prompt plus `budget` tokens fits the model's `context` (max_position_embeddings);
    else a UserError naming the question, or with `truncate` its problem text cut at the end to fit."""
    out = []
    for i, q in enumerate(questions, 1):
        while (excess := len(tokenizer.chat_prompt(q["problem"])) + budget - context) > 0:
            if not truncate or not q["problem"]:
                raise UserError(f"{source}: question {i} ({q['problem'][:30]!r}...): prompt plus {budget} response "
                                f"tokens exceeds the model's {context}-token context; shorten it or truncate it")
            ids = tokenizer.encode(q["problem"])
            q = {**q, "problem": tokenizer.decode(ids[:max(0, len(ids) - excess)])}
        out.append(q)
    return out


def save_jsonl(rows, path) -> None:
    """Write rows as JSON lines atomically: a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def insert_commands(response: list[int], commands: CommandTokens, rng: random.Random,
                    max_commands: int = 3, max_exponent: int = 3, boundaries=None) -> list[int]:
    """D11: the response with k ~ U{0..max_commands} commands at distinct boundaries t ~ U{0..len-1}.
    Boundary t means "before response[t]", so at least one response token follows every command; its n is
    min(d * 10^j, len(response) - t), d ~ U{1..9}, j ~ U{0..max_exponent}. k is capped by the number of
    boundaries (a short response has fewer). max_exponent 3 is D11; a smaller one scales n down to short
    responses (`scripts/train_grpo.py --warmup-max-exponent`). `boundaries`, if given, are the only allowed
    t (the toy preset's departure: where the student was unsure, `sft.unsure_boundaries`)."""
    response = list(response)
    allowed = range(len(response)) if boundaries is None else sorted(set(boundaries))
    if boundaries is not None and any(not 0 <= t < len(response) for t in allowed):
        raise ValueError(f"boundaries must lie in 0..{len(response) - 1} (before a response token)")
    k = min(rng.randint(0, max_commands), len(allowed))
    out, prev = [], 0
    for t in sorted(rng.sample(allowed, k)):
        n = rng.randint(1, 9) * 10 ** rng.randint(0, max_exponent)
        out += response[prev:t] + format_call(min(n, len(response) - t), commands)
        prev = t
    return out + response[prev:]


def keep_by_pass_rate(pass_rates, threshold: float = 0.5) -> list[int]:
    """D12 (paper §3.2.2): indices of the questions whose teacher pass rate is >= threshold."""
    return [i for i, p in enumerate(pass_rates) if p >= threshold]
