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
