"""scripts/gpu_check.py runs every section at tiny shapes on CPU (`--tiny --device cpu`), so the GPU check
cannot rot between the rare runs on a GPU; the CUDA-only rows say "n/a on cpu" instead of a number."""
from __future__ import annotations

import re

from scripts import gpu_check


def test_tiny_cpu_run_writes_every_row_of_the_table_to_out_only(tmp_path, capsys):
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\n## GPU check\n\nolder entry\n\n## 9. Later section\n\ntext\n")
    assert gpu_check.main(["--tiny", "--device", "cpu", "--out", str(out)]) == 0
    text = out.read_text()
    gpu, later = text.index("## GPU check"), text.index("## 9. Later section")
    entry = text[gpu:later]  # appended inside the GPU check section, after the older entry
    assert "older entry" in entry and "torch " in entry and "--tiny" in entry
    rows = [line for line in entry.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    assert not any("FAILED" in r for r in rows)
    parity = [r for r in rows if r.startswith("| parity")]
    assert len(parity) == 2 and all(re.search(r"greedy tokens equal \d+/64", r) for r in parity)
    graphs = [r for r in rows if r.startswith("| CUDA graphs vs eager")]
    bandwidth = [r for r in rows if r.startswith("| decode HBM bandwidth share")]
    assert len(graphs) == len(bandwidth) == 4 and all("n/a on cpu" in r for r in graphs + bandwidth)
    relay, = [r for r in rows if r.startswith("| relay")]
    assert float(re.search(r"([\d.]+) calls per row", relay)[1]) > 0  # the scripted stream forced calls
    grpo, = [r for r in rows if r.startswith("| GRPO step")]
    assert re.search(r"call ratio [1-9][\d.]*%", grpo) and "rollout" in grpo and "update" in grpo
    assert "n/a on cpu" in grpo and "plan " in grpo


def test_a_tiny_run_without_out_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "ROOT", tmp_path)  # where docs/benchmarks.md would go
    assert gpu_check.main(["--tiny", "--device", "cpu", "--only", "parity"]) == 0
    assert not (tmp_path / "docs").exists()
