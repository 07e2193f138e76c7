"""The `<call>n</call>` command protocol (paper §3.1; decisions D1-D3, D6, D8).

Contract:
- D1: a command is the `<call>` id, 1-4 digit ids (value n >= 1, leading zeros allowed), the `</call>` id.
- D2: `CommandParser` is the one grammar, used by the relay sampler, training, evaluation and the tests. It
  reads the student's sampled tokens one at a time (never teacher tokens) and labels each as TEXT or COMMAND
  the moment it is sampled; a token that closes a well-formed command also reports n. The first token that
  breaks the grammar makes the open command void (it calls nobody): a breaking `</call>` belongs to the void
  command, a breaking `<call>` opens a new command, anything else (EOS included) is ordinary text. A `</call>`
  outside a command is a void command token; a command still open at the end of a response is void. The
  parser reports the requested n; clamping it to the budget is the sampler's job (D7).
- D3: the teacher sees the context without COMMAND tokens (`teacher_view`, `strip_commands`).
- D6: the call ratio is teacher tokens / all response tokens (`call_ratio`).
- D8: the GRPO loss covers every student-sampled token, commands included, not teacher tokens (`loss_mask`).

The whole-sequence functions replay a response through the same streaming parser, skipping teacher tokens.
"""

from collections.abc import Sequence
from itertools import groupby
from typing import NamedTuple

TEXT, COMMAND, TEACHER = 0, 1, 2  # the author of a response token: student text, student command token, teacher
MAX_DIGITS = 4


class CommandTokens(NamedTuple):
    """Token ids of the command grammar (D1): `<call>`, `</call>`, and digit_ids[d] = the id of digit d."""
    call_id: int
    end_id: int
    digit_ids: tuple[int, ...]


def format_call(n: int, commands: CommandTokens) -> list[int]:
    """`<call>n</call>` as token ids: the call id, the decimal digits of n (1-4 of them), the end id (D1)."""
    if not 1 <= n <= 9999:
        raise ValueError(f"a command asks for 1 to 9999 tokens, not {n}")
    return [commands.call_id, *(commands.digit_ids[int(c)] for c in str(n)), commands.end_id]


class CommandParser:
    """Streaming D2 state machine, fed the student's sampled tokens one at a time (never teacher tokens)."""

    def __init__(self, commands: CommandTokens):
        self.commands = commands
        self._digit = {t: d for d, t in enumerate(commands.digit_ids)}
        self._count: int | None = None  # digits read inside the open command; None when no command is open
        self._value = 0

    @property
    def pending(self) -> bool:
        """True while inside an open command."""
        return self._count is not None

    def feed(self, token: int) -> tuple[int, int | None]:
        """Returns (author, n): author is TEXT or COMMAND for this token (known causally, at the moment it is
        sampled); n is the requested length when this token closes a well-formed command, else None."""
        if token == self.commands.call_id:  # inside an open command it voids that one and opens a new one
            self._count, self._value = 0, 0
            return COMMAND, None
        if token == self.commands.end_id:  # D3 removes every `</call>`, so even a stray one is a command token
            n = self._value if self._count and self._value else None  # no digits, or value 0: void
            self._count = None
            return COMMAND, n
        digit = self._digit.get(token)
        if self._count is not None and digit is not None and self._count < MAX_DIGITS:
            self._count, self._value = self._count + 1, 10 * self._value + digit
            return COMMAND, None
        self._count = None  # a breaking token (a fifth digit, EOS, ...) is ordinary text
        return TEXT, None


class Segment(NamedTuple):
    """Tokens [start, end) of a response. kind: "text", "call" (well-formed, n set), "void" or "teacher"."""
    kind: str
    start: int
    end: int
    n: int | None = None


def _parse(tokens: Sequence[int], teacher_mask: Sequence[bool], commands: CommandTokens):
    """(author, n, start) per token, start being where a COMMAND token's command begins (else None).
    Teacher tokens bypass the parser, as in the relay sampler."""
    parser, out, start = CommandParser(commands), [], 0
    for i, (token, is_teacher) in enumerate(zip(tokens, teacher_mask, strict=True)):
        if is_teacher:
            out.append((TEACHER, None, None))
            continue
        if token == commands.call_id or not parser.pending:  # a stray `</call>` is a void command of its own
            start = i
        author, n = parser.feed(token)
        out.append((author, n, start if author == COMMAND else None))
    return out


def label_response(tokens: Sequence[int], teacher_mask: Sequence[bool], commands: CommandTokens) -> list[int]:
    """The author of every response token: TEXT, COMMAND or TEACHER."""
    return [author for author, _, _ in _parse(tokens, teacher_mask, commands)]


def requested_calls(tokens: Sequence[int], teacher_mask: Sequence[bool], commands: CommandTokens) -> list[int]:
    """The requested n of every well-formed command, in order (before the sampler clamps it)."""
    return [n for _, n, _ in _parse(tokens, teacher_mask, commands) if n is not None]


def split_response(tokens: Sequence[int], teacher_mask: Sequence[bool], commands: CommandTokens) -> list[Segment]:
    """Consecutive segments covering the response: each command is one "call" or "void" segment; a run of
    text or of teacher tokens is one segment. (A teacher span inside an open command, which the relay
    sampler never writes, splits that command into pieces of the same kind.)"""
    parsed = _parse(tokens, teacher_mask, commands)
    n_of = {start: n for _, n, start in parsed if n is not None}
    segments, i = [], 0
    for (author, start), run in groupby((author, start) for author, _, start in parsed):
        end = i + len(list(run))
        kind = "text" if author == TEXT else "teacher" if author == TEACHER else "call" if start in n_of else "void"
        segments.append(Segment(kind, i, end, n_of.get(start)))
        i = end
    return segments


def teacher_view(tokens: Sequence[int], authors: Sequence[int]) -> list[int]:
    """D3: the tokens without any COMMAND token; TEXT and TEACHER tokens kept, in order."""
    return [t for t, a in zip(tokens, authors, strict=True) if a != COMMAND]


def strip_commands(tokens: Sequence[int], commands: CommandTokens) -> list[int]:
    """The teacher view of a token list parsed as if the student sampled all of it."""
    return teacher_view(tokens, label_response(tokens, [False] * len(tokens), commands))


def loss_mask(authors: Sequence[int], train_on_teacher_tokens: bool = False) -> list[bool]:
    """D8: True on the student's TEXT and COMMAND tokens; on TEACHER tokens only with the flag (the release)."""
    return [a != TEACHER or train_on_teacher_tokens for a in authors]


def call_ratio(teacher_mask: Sequence[bool]) -> float:
    """D6: rho(y) = teacher tokens / all response tokens (EOS included); 0.0 for an empty response."""
    return sum(bool(t) for t in teacher_mask) / len(teacher_mask) if len(teacher_mask) else 0.0
