"""`UserError` (a bad file, flag value or checkpoint; `ArgumentParser`'s flag errors) and a missing file end a
script run by `run_script` with one stderr line and exit code 2; anything else is a bug and keeps its traceback."""

import argparse
import sys


class UserError(ValueError):
    pass


def run_script(main) -> None:
    try:
        code = main()
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)  # a main may return its exit status


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # a bad flag is a user error: one line, not the whole usage
        raise UserError(f"{self.prog}: {message} (see --help)")
