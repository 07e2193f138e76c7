"""The real Qwen3 tokenizer (tests/fixtures/qwen3_tokenizer, gzipped) unpacked as a checkpoint's tokenizer files."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "qwen3_tokenizer"
FILES = ("tokenizer.json", "tokenizer_config.json")


def unpack_qwen3_tokenizer(directory) -> Path:
    """Write Qwen3's tokenizer.json and tokenizer_config.json into `directory` (made if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (directory / name).write_bytes(gzip.decompress((FIXTURE / f"{name}.gz").read_bytes()))
    return directory


@pytest.fixture(scope="session")
def qwen3_dir(tmp_path_factory) -> Path:
    return unpack_qwen3_tokenizer(tmp_path_factory.mktemp("qwen3_tokenizer"))
