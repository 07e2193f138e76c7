"""The README's commands work as written: each `python scripts/...` line names a script that exists, takes
`--help`, and accepts the flags the README gives it (parsed in-process, nothing is run)."""
import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[list[str]]:
    """Every command line of the README's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [words for line in lines if (words := shlex.split(line, comments=True))]


COMMANDS = [words for words in readme_commands() if any(w.startswith("scripts/") for w in words)]
PYTHON_COMMANDS = [words for words in COMMANDS if words[0] in ("python", "python3") and len(words) > 1]
SCRIPTS = sorted({words[1] for words in PYTHON_COMMANDS})


class Parsed(Exception):
    """Raised in place of running a script once its arguments have parsed."""


def run_script(path: str, argv: list[str], monkeypatch):
    monkeypatch.setattr(sys, "argv", [path, *argv])
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    runpy.run_path(str(ROOT / path), run_name="__main__")


def test_the_readme_has_the_quick_start_and_paper_preset_commands():
    assert {"scripts/train_grpo.py", "scripts/evaluate.py", "scripts/show.py", "scripts/prepare_data.py",
            "scripts/download_weights.py", "scripts/filter_data.py"} <= set(SCRIPTS)


def test_every_script_command_starts_with_python():
    # `scripts/show.py ...` on its own fails with "Permission denied": the scripts are not executable.
    bad = [" ".join(words) for words in COMMANDS if words[0] not in ("python", "python3")]
    assert not bad, f"README commands not run through python: {bad}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_readme_script_takes_help(script, monkeypatch, capsys):
    assert (ROOT / script).is_file(), f"the README names {script}, which does not exist"
    with pytest.raises(SystemExit) as done:
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert done.value.code in (0, None) and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("words", PYTHON_COMMANDS, ids=[" ".join(w[1:4]) for w in PYTHON_COMMANDS])
def test_each_readme_command_parses_its_flags(words, monkeypatch, capsys):
    try:
        run_script(words[1], words[2:], monkeypatch)
    except SystemExit as e:
        pytest.fail(f"`{' '.join(words)}` does not parse: {capsys.readouterr().err.strip().splitlines()[-1:]} ({e})")
    except Parsed:
        return
    pytest.fail(f"`{' '.join(words)}` never parsed its arguments")


def test_the_tour_lists_every_library_file_and_every_script():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme[readme.index("## A tour of the code"):readme.index("## Running the paper preset")]
    rows = re.findall(r"^\| (.+?) \|", tour, flags=re.M)
    named = {name for row in rows for name in re.findall(r"`([\w/]+\.py)`", row)}
    missing = [p.name for p in sorted((ROOT / "relay_ref").glob("*.py")) if p.name not in named]
    missing += [f"scripts/{p.name}" for p in sorted((ROOT / "scripts").glob("*.py")) if f"scripts/{p.name}" not in named]
    assert not missing, f"not in the README's tour: {missing}"


@pytest.mark.slow
def test_the_readme_evaluate_then_show_commands_run_on_the_toy_world(tmp_path):
    """The README's evaluate -> show sequence end to end on 16 toy questions (about 30 s on 2 cores)."""
    import json
    import subprocess
    results, svg = tmp_path / "eval" / "results.json", tmp_path / "eval" / "transcripts.svg"
    for argv in (["scripts/evaluate.py", "--limit", "16", "--out", str(results)],
                 ["scripts/show.py", "--results", str(results), "--svg", str(svg)]):
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    assert svg.read_text().startswith("<svg") and json.loads(results.read_text())
