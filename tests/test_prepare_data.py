"""Training data for the paper preset (§4.3, D12's input) and the hub's failures as one line.

`scripts/prepare_data.py dapo OUT.jsonl` turns DAPO-Math-17k's rows (a chat `prompt` whose user turn wraps the
problem in a fixed instruction, the gold in `reward_model.ground_truth`) into problem/answer rows, dropping
and counting repeated problems and golds the checker cannot read. Tested on a parquet file in the real
layout, made here; the hub is never contacted (offline mode or a stand-in download).
"""
import json
import runpy
import sys
from pathlib import Path

import pytest

from relay_ref import benchmarks
from relay_ref.answers import is_scorable
from relay_ref.benchmarks import REGISTRY, load_benchmark, prepare
from relay_ref.checkpoint import resolve_checkpoint
from relay_ref.data import load_questions

ROOT = Path(__file__).resolve().parent.parent
HEAD = ("Solve the following math problem step by step. The last line of your response should be of the form "
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
TAIL = '\n\nRemember to put your answer on its own line after "Answer:".'
PROBLEMS = [("Find $x$ if $3x = 12$.", "4"), ("Compute $\\binom{5}{2}$.", "10"),
            ("Find $x$ if $3x = 12$.", "4"),               # the same problem again (the hub file repeats each)
            ("What is $1 + 1$?", "$ $"),                    # a gold that normalizes to nothing
            ("Evaluate $2^{10}$.", "\\boxed{1024}")]


def dapo_parquet(path: Path) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    rows = [{"data_source": "math_dapo", "prompt": [{"content": HEAD + p + TAIL, "role": "user"}], "ability": "MATH",
             "reward_model": {"ground_truth": a, "style": "rule-lighteval/MATH_v2"}, "extra_info": {"index": str(i)}}
            for i, (p, a) in enumerate(PROBLEMS)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def run_script(argv, monkeypatch):
    """Run the script as `python scripts/prepare_data.py ARGV` would; a success exits 0."""
    monkeypatch.setattr(sys, "argv", ["scripts/prepare_data.py", *map(str, argv)])
    try:
        runpy.run_path(str(ROOT / "scripts/prepare_data.py"), run_name="__main__")
    except SystemExit as done:
        if done.code != 0:
            raise


def test_a_dapo_row_loses_its_instruction_and_keeps_the_ground_truth(tmp_path):
    rows = load_benchmark(dapo_parquet(tmp_path / "dapo.parquet"))
    assert rows[0] == {"problem": "Find $x$ if $3x = 12$.", "answer": "4"}
    assert [r["problem"] for r in rows[:2]] == [p for p, _ in PROBLEMS[:2]]


def test_prepare_drops_and_counts_repeated_problems_and_unreadable_golds(tmp_path):
    rows, counts = prepare(dapo_parquet(tmp_path / "dapo.parquet"))
    assert [r["answer"] for r in rows] == ["4", "10", "\\boxed{1024}"]
    assert counts == {"read": 5, "unreadable gold": 1, "duplicates": 1, "kept": 3}


@pytest.mark.parametrize("gold, readable", [("4", True), ("\\frac{1}{2}", True), ("\\text{(B)}", True),
                                            ("\\boxed{7}", True), ("$ $", False), ("\\,", False),
                                            ("\\boxed{7", False), ("\\boxed{}", False)])
def test_a_gold_is_readable_when_the_checker_has_something_to_compare(gold, readable):
    assert is_scorable(gold) is readable


def test_the_script_writes_question_rows_and_says_what_it_dropped(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out" / "dapo.jsonl"
    run_script([dapo_parquet(tmp_path / "dapo.parquet"), out], monkeypatch)
    assert load_questions(out) == [{"problem": p, "answer": a} for p, a in (PROBLEMS[0], PROBLEMS[1], PROBLEMS[4])]
    said = capsys.readouterr().out
    assert "read 5 rows" in said and "1 repeated" in said and "1 unreadable" in said and "wrote 3" in said


def test_the_name_dapo_downloads_the_public_file_and_says_where_from(tmp_path, monkeypatch, capsys):
    import huggingface_hub
    local, calls = dapo_parquet(tmp_path / "dapo-math-17k.parquet"), []

    def fake_download(repo_id, filename, repo_type=None, **kw):
        calls.append((repo_id, filename, repo_type))
        return str(local)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    run_script(["dapo", tmp_path / "dapo.jsonl"], monkeypatch)
    assert calls == [("BytedTsinghua-SIA/DAPO-Math-17k", "data/dapo-math-17k.parquet", "dataset")]
    said = capsys.readouterr().out
    assert "BytedTsinghua-SIA/DAPO-Math-17k" in said and "data/dapo-math-17k.parquet" in said and str(local) in said
    assert len(load_questions(tmp_path / "dapo.jsonl")) == 3


def test_train_grpo_accepts_a_dataset_name_for_its_training_data():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from train_grpo import parse_args
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    args, _, _ = parse_args(["--preset", "paper", "--train-data", "dapo"])
    assert args.train_data == "dapo" and "dapo" in REGISTRY


@pytest.fixture
def offline(monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and err.value.__cause__ is None and err.value.__suppress_context__
    return text


def test_an_unreachable_hub_is_one_line_naming_the_model_id_and_the_local_way(offline):
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint("relay-ref-test/no-such-model")
    text = one_line(err)
    assert text.startswith("relay-ref-test/no-such-model ") and "unreachable" in text
    assert "local checkpoint directory" in text


def test_an_unreachable_hub_is_one_line_for_a_dataset_too(offline):
    with pytest.raises(FileNotFoundError) as err:
        load_benchmark("dapo")
    text = one_line(err)
    assert text.startswith("BytedTsinghua-SIA/DAPO-Math-17k ") and "unreachable" in text
    assert "data/dapo-math-17k.parquet" in text and "path" in text


def test_a_repo_the_hub_does_not_have_is_one_line_saying_so(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(*args, **kwargs):
        raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # its constructor wants an HTTP response
    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint("relay-ref-test/no-such-model")
    assert "is not on the Hugging Face hub" in one_line(err)


def test_the_script_exits_2_with_one_line_when_the_hub_is_unreachable(offline, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        run_script(["dapo", tmp_path / "dapo.jsonl"], monkeypatch)
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and len(err.splitlines()) == 1 and "BytedTsinghua-SIA/DAPO-Math-17k" in err
    assert not (tmp_path / "dapo.jsonl").exists()


def test_the_paper_preset_offline_is_one_line_naming_the_hub_id(offline):
    from scripts import train_grpo
    with pytest.raises(FileNotFoundError) as err:  # run_script: one stderr line, exit 2
        train_grpo.main(["--preset", "paper", "--train-data", str(ROOT / "tests/fixtures/gsm8k_test.jsonl")])
    assert one_line(err).startswith("Qwen/Qwen3-1.7B could not be fetched: the Hugging Face hub was unreachable")
