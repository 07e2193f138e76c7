"""`UserError` (a bad file, flag value or checkpoint) and a missing file end a script, run by `run_script`,
with one stderr line and exit code 2; anything else is a bug and keeps its traceback."""
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
