"""Question files for training and evaluation: a public dataset as JSON lines with `problem` and `answer`.

    python scripts/prepare_data.py dapo dapo.jsonl          # DAPO-Math-17k, the paper's training set (§4.3)
    python scripts/prepare_data.py math500 math500.jsonl    # or any benchmark name the evaluation knows
    python scripts/prepare_data.py my_questions.parquet out.jsonl      # or a local .jsonl/.json/.csv/.parquet

A name is downloaded with huggingface_hub into its cache (parquet files need pyarrow: `pip install pyarrow`,
part of the test extra). Rows whose gold answer the checker cannot read (design.md D13) and repeats of a
problem are dropped and counted; the script prints where the data came from and how many rows it kept.
Next step for the paper preset: `python scripts/filter_data.py dapo.jsonl dapo_filtered.jsonl ...` (D12).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from relay_ref.benchmarks import REGISTRY, fetch, prepare
from relay_ref.data import save_jsonl
from relay_ref.errors import ArgumentParser, UserError, run_script


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help=f"a dataset name ({', '.join(REGISTRY)}) or a local file")
    ap.add_argument("out", type=Path, help="the JSON-lines file to write")
    ap.add_argument("--limit", type=int, help="only the first N rows of the source")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.source in REGISTRY:
        repo, file, _ = REGISTRY[args.source]
        print(f"{args.source}: hub dataset {repo}, file {file}")
        source = fetch(args.source)
        print(f"  local copy: {source}")
    else:
        source = args.source
    try:
        rows, counts = prepare(source, args.limit)
    except ImportError as e:  # parquet without pyarrow
        raise UserError(str(e)) from None
    if not rows:
        raise UserError(f"{args.source}: no usable rows ({counts})")
    save_jsonl(rows, args.out)
    print(f"read {counts['read']} rows; dropped {counts['duplicates']} repeated problems and "
          f"{counts['unreadable gold']} unreadable gold answers; wrote {counts['kept']} -> {args.out}")


if __name__ == "__main__":
    run_script(main)
