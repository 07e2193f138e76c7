"""User errors: a bad file, flag value or checkpoint ends a script with one stderr line and exit code 2.

Library code raises `UserError` (a ValueError) where it validates what a user gave it; `run_script(main)`
in every script turns it, and a missing or unreadable user file (OSError), into that line. Anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys


class UserError(ValueError):
    pass


def run_script(main) -> None:
    try:
        main()
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message
        sys.exit(2)
