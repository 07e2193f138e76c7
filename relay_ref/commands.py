"""The `<call>n</call>` command protocol (paper §3.1; decisions D1-D3, D8).

(Skeleton: the parser and whole-sequence functions are being written.)
"""
from __future__ import annotations

from typing import NamedTuple


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
