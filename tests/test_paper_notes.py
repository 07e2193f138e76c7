"""PAPER_NOTES.md stays true: every file and function it names exists, every table and equation has a line."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTES = (ROOT / "PAPER_NOTES.md").read_text()


def defined_names(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_every_named_file_and_function_exists():
    refs = re.findall(r"`((?:relay_ref|scripts|tests)/[\w./]+?)(?:::(\w+))?[` ]", NOTES)
    assert len(refs) > 40
    for path, name in refs:
        assert (ROOT / path).exists(), f"PAPER_NOTES.md names {path}, which does not exist"
        if name:
            assert name in defined_names(ROOT / path), f"PAPER_NOTES.md names {path}::{name}, not defined there"


def test_every_table_equation_and_figure_of_the_paper_has_a_line():
    for i in range(1, 8):
        assert f"Table {i}" in NOTES
    for i in range(1, 4):
        assert f"Eq. ({i})" in NOTES
    for i in range(1, 5):
        assert f"Fig. {i}" in NOTES
    for d in range(1, 15):
        assert f"| D{d} |" in NOTES
