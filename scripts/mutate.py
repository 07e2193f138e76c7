"""Mutation testing by hand: plant one-line bugs in a copy of the repository and see whether the tests notice.

A maintainer's tool, run before a release (not in CI). It copies the tracked files to a temporary directory
(one copy per job), applies each mutation of scripts/mutations.py to its copy, runs that module's test files
with `python -m pytest -x -q -p no:cacheprovider` (PYTHONPATH at the copy), and restores the file.
A mutant is *caught* when the tests fail (or run past --timeout), *survived* when they pass, and *stale* when
its `old` string does not occur exactly once in the file (reported, never counted as caught). The unmutated
tests of every selected module must pass first, or nothing is measured.

    OMP_NUM_THREADS=1 python scripts/mutate.py --jobs 1             # everything (about 15 minutes on 2 cores)
    python scripts/mutate.py --module grpo --module relay          # some modules
    python scripts/mutate.py --list                                # the mutants, no run
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
from mutations import MUTATIONS, TESTS  # noqa: E402

from relay_ref.errors import ArgumentParser, run_script  # noqa: E402


def module_of(file: str) -> str:
    return Path(file).stem


def copy_repository(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(copy: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "pass" if proc.returncode == 0 else "fail"


def try_mutant(copy: Path, mutation, timeout: float) -> str:
    file, old, new, _ = mutation
    path = copy / file
    original = path.read_text()
    if original.count(old) != 1:
        return "stale"
    path.write_text(original.replace(old, new))
    try:
        outcome = run_tests(copy, TESTS[module_of(file)], timeout)
    finally:
        path.write_text(original)
    return {"pass": "survived", "fail": "caught", "timeout": "caught (timeout)"}[outcome]


def main() -> int:
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--module", action="append", choices=sorted(TESTS), help="only this module (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the mutants and their test files, run nothing")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run in parallel, one repository copy each")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutant's tests before it counts as caught")
    args = ap.parse_args()
    if args.jobs < 1:
        print(f"--jobs {args.jobs}: need at least 1", file=sys.stderr)
        return 2
    chosen = [m for m in MUTATIONS if args.module is None or module_of(m[0]) in args.module]
    if args.list:
        for file, old, new, why in chosen:
            print(f"{module_of(file):11} {why}\n{'':11} {old!r} -> {new!r}   [{' '.join(TESTS[module_of(file)])}]")
        print(f"{len(chosen)} mutants")
        return 0
    with tempfile.TemporaryDirectory(prefix="relay_mutate_") as tmp:
        copies: Queue = Queue()
        for j in range(args.jobs):
            copy_repository(Path(tmp) / str(j))
            copies.put(Path(tmp) / str(j))
        first = copies.get()
        for module in sorted({module_of(m[0]) for m in chosen}):
            if run_tests(first, TESTS[module], args.timeout) != "pass":
                print(f"the unmutated tests of {module} ({' '.join(TESTS[module])}) fail: fix them first",
                      file=sys.stderr)
                return 1
        copies.put(first)

        def job(mutation):
            copy = copies.get()
            try:
                t0 = time.time()
                outcome = try_mutant(copy, mutation, args.timeout)
                print(f"{outcome:17} {module_of(mutation[0]):11} {mutation[3]} ({time.time() - t0:.0f} s)", flush=True)
                return outcome
            finally:
                copies.put(copy)

        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(job, chosen))
    print("\nmodule       caught/measured  stale")
    for module in dict.fromkeys(module_of(m[0]) for m in chosen):
        got = [o for m, o in zip(chosen, outcomes) if module_of(m[0]) == module]
        measured = [o for o in got if o != "stale"]
        caught = sum(o.startswith("caught") for o in measured)
        score = f"{100 * caught / len(measured):.0f}%" if measured else "-"
        print(f"{module:12} {caught:3}/{len(measured):<3} {score:>5}   {got.count('stale')}")
    measured = [o for o in outcomes if o != "stale"]
    caught = sum(o.startswith("caught") for o in measured)
    print(f"{'all':12} {caught:3}/{len(measured):<3} {100 * caught / max(len(measured), 1):.0f}%   "
          f"{outcomes.count('stale')}")
    for (file, old, new, why), o in zip(chosen, outcomes):
        if o in ("survived", "stale"):
            print(f"{o.upper()}: {file}: {why}: {old!r} -> {new!r}")
    return 0


if __name__ == "__main__":
    run_script(main)
