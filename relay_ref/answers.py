"""Answer checking (decision D13; the correctness indicator 𝟙(a = g) of paper §3.2.3, Eq. 3).

- `extract_boxed(text)`: the content of the last `\\boxed{...}` (balanced braces), or None when there is none
  or the last one is unterminated. Numbers outside a box never count: the format is part of the task.
- `normalize(s)`: drops `$`, spaces, `\\left`/`\\right`, thin spaces, a trailing `.`, thousands commas, a
  leading `+`, a leading `x=`, degrees (`^\\circ`, `°`) and a `\\text{unit}` after a number; `\\dfrac`/`\\tfrac`
  become `\\frac`, `\\frac12` becomes `\\frac{1}{2}`, and `\\frac{a}{b}` with plain numbers becomes `a/b`.
- `is_scorable(gold)`: False when no box can match the gold: normalized it is empty (or an unterminated
  `\\boxed{`) or its braces do not balance (a box's content's always do).
- `is_correct(response_text, gold)`: when both sides read as numbers (integers, decimals, `a/b`, a percent
  meaning /100) they are compared by value with `fractions.Fraction`, and that decision is final (so no
  lenient x100 percent match). Otherwise math-verify decides if it is installed (the optional `math` extra;
  both sides passed as `\\boxed{...}` so only boxed answers count), else normalized strings must be equal.
  Whoever wrote the box, student or teacher, it counts (D13). math-verify gets a 5 s timeout;
  `checker_name()` says which checker decides.
"""

import importlib.util
import re
from fractions import Fraction

_NUM = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_FRAC = re.compile(r"\\frac\{(" + _NUM + r")\}\{(" + _NUM + r")\}")


def extract_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{") - 1
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin + 1:i]
    return None


def normalize(s: str) -> str:
    s = re.sub(r"\s|\$|\\left|\\right|\\[,!;]|\^\{?\\circ\}?|°", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")
    s = re.sub(r"(?<=\d)\\(?:text|mbox|mathrm)\{[a-zA-Z]*\}$", "", re.sub(r"^\+(?=[\d.])|^[a-zA-Z]=", "", s))
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    return _FRAC.sub(r"\1/\2", s)


def to_number(s: str) -> Fraction | None:
    """The value of a normalized integer, decimal, fraction `a/b` or percent, else None."""
    scale = Fraction(1)
    if s.endswith("%"):
        s, scale = s[:-1].removesuffix("\\"), Fraction(1, 100)
    m = re.fullmatch(f"({_NUM})(?:/({_NUM}))?", s)
    if m is None or (m[2] is not None and Fraction(m[2]) == 0):
        return None
    return Fraction(m[1]) / Fraction(m[2] or 1) * scale


def _gold(gold: str) -> str:
    return normalize((extract_boxed(gold) if "\\boxed{" in gold else gold) or "")


def is_scorable(gold: str) -> bool:
    g = _gold(gold)
    return bool(g) and extract_boxed(f"\\boxed{{{g}}}") == g  # the box closes exactly at its end: braces balance


def checker_name() -> str:
    return "math-verify" if importlib.util.find_spec("math_verify") else "built-in fallback (no math-verify)"


def is_correct(response_text: str, gold: str) -> bool:
    pred = extract_boxed(response_text)
    if pred is None:
        return False
    p, g = normalize(pred), _gold(gold)
    pv, gv = to_number(p), to_number(g)
    if pv is not None and gv is not None:
        return pv == gv
    gold = extract_boxed(gold) if "\\boxed{" in gold else gold
    try:
        from math_verify import parse, verify
    except ImportError:
        return p == g
    return bool(verify(parse(f"\\boxed{{{gold}}}", parsing_timeout=5),
                       parse(f"\\boxed{{{pred}}}", parsing_timeout=5), timeout_seconds=5))
