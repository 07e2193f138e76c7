"""Fetch Qwen3 checkpoints from the Hugging Face hub into weights/ (config, safetensors, tokenizer only).

    python scripts/download_weights.py                      # Qwen/Qwen3-0.6B, -1.7B and -8B
    python scripts/download_weights.py Qwen/Qwen3-1.7B --dest weights

Each model lands in weights/<name> (e.g. weights/Qwen3-1.7B), which `relay_ref.load_model` reads
directly. You can also pass a hub id straight to `load_model`: it downloads into the hub cache.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from relay_ref.checkpoint import HUB_FILES
from relay_ref.errors import ArgumentParser, run_script

PAPER_MODELS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-8B"]


def main():
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repos", nargs="*", default=PAPER_MODELS, help="hub ids (default: the paper's three)")
    ap.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    ap.add_argument("--revision", default=None, help="a branch, tag or commit of the hub repo")
    args = ap.parse_args()
    from huggingface_hub import snapshot_download
    for repo in args.repos:
        target = args.dest / repo.split("/")[-1]
        print(f"{repo} -> {target}")
        snapshot_download(repo, revision=args.revision, local_dir=target, allow_patterns=HUB_FILES)


if __name__ == "__main__":
    run_script(main)
