"""The repository explains itself: no file points outside it, and every decision it cites is written down.

Code and docs cite the project's decisions as D1-D14, the GRPO notes as "design.md GRPO (a)"/"(b)" and the
decoding notes as "design.md §3.x"; docs/design.md must define each one as a heading. No tracked text file
may name a path outside the repository (a reader of a clone has nothing else).
"""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = (ROOT / "docs/design.md").read_text(encoding="utf-8")
# Spelled in pieces so that this file does not name them itself.
OUTSIDE = ["../" + "shared", "shared/" + "reference", "relayllm" + ".md", "grpo" + ".md",
           "qwen3-and-" + "decoding.md"]
CITING = ["relay_ref", "scripts", "tests", "docs", "README.md", "PAPER_NOTES.md"]


def tracked_text_files() -> dict[str, str]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist, a copied tree)
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    texts = {}
    for name in names:
        data = (ROOT / name).read_bytes() if (ROOT / name).is_file() else b""
        if b"\0" not in data:
            try:
                texts[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
    return texts


def citing_texts() -> dict[str, str]:
    return {n: t for n, t in tracked_text_files().items() if n.split("/")[0] in CITING}


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    texts = tracked_text_files()
    assert "README.md" in texts and "docs/design.md" in texts
    found = [f"{name}:{text[:text.index(s)].count(chr(10)) + 1}: {s}"
             for name, text in texts.items() for s in OUTSIDE if s in text]
    assert not found, "outside references (cite docs/design.md or the paper instead):\n" + "\n".join(found)


def test_the_design_doc_defines_d1_to_d14_once_each_in_order():
    numbers = [int(n) for n in re.findall(r"^## D(\d+) \w", DESIGN, flags=re.M)]
    assert numbers == list(range(1, 15))


def test_every_cited_decision_is_defined_in_the_design_doc():
    defined = {int(n) for n in re.findall(r"^## D(\d+) ", DESIGN, flags=re.M)}
    cited = {(name, int(n)) for name, text in citing_texts().items() for n in re.findall(r"\bD([1-9]\d*)\b", text)}
    assert len({n for _, n in cited}) >= 14
    missing = sorted(f"{name}: D{n}" for name, n in cited if n not in defined)
    assert not missing, "cited but not defined in docs/design.md:\n" + "\n".join(missing)


def test_every_cited_grpo_note_and_decoding_section_is_a_heading_of_the_design_doc():
    grpo = set(re.findall(r"^## GRPO \(([a-z])\) ", DESIGN, flags=re.M))
    decoding = set(re.findall(r"^## Decoding §(\d\.\d) ", DESIGN, flags=re.M))
    assert grpo == {"a", "b"} and decoding == {f"3.{i}" for i in range(1, 7)}
    missing = []
    for name, text in citing_texts().items():
        for note in re.findall(r"design\.md (?:§\s*)?GRPO \(([a-z])\)", text):
            missing += [f"{name}: GRPO ({note})"] * (note not in grpo)
        for first, last in re.findall(r"design\.md §(\d\.\d)(?:-(\d\.\d))?", text):
            for sec in {first, last or first}:
                missing += [f"{name}: §{sec}"] * (sec not in decoding)
    assert not missing, "cited but not a heading of docs/design.md:\n" + "\n".join(missing)
