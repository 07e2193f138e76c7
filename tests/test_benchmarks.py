"""Benchmark readers (paper §4.2, Table 1; design.md D14) on hand-written fixtures in the real formats."""
import json
from pathlib import Path

import pytest

from relay_ref import benchmarks
from relay_ref.benchmarks import REGISTRY, load_benchmark

FIXTURES = Path(__file__).parent / "fixtures"


def test_gsm8k_answer_is_what_follows_the_hashes_without_thousands_commas():
    rows = load_benchmark(FIXTURES / "gsm8k_test.jsonl")
    assert [r["answer"] for r in rows] == ["50", "1200"]
    assert rows[0]["problem"].startswith("A baker fills 12 trays")
    assert set(rows[0]) == {"problem", "answer"}


def test_math500_jsonl_uses_problem_and_answer():
    rows = load_benchmark(FIXTURES / "math500_test.jsonl")
    assert [r["answer"] for r in rows] == ["\\frac{14}{3}", "3"]


def test_simple_evals_csv_keeps_multiline_questions_with_commas():
    rows = load_benchmark(FIXTURES / "math_500_test.csv")
    assert rows[0] == {"problem": "Let $f(x) = 2x + 1$.\nWhat is $f(3)$, exactly?", "answer": "7"}
    assert [r["answer"] for r in rows] == ["7", "5\\sqrt{2}", "90"]


def test_minerva_prefers_the_answer_field():
    assert [r["answer"] for r in load_benchmark(FIXTURES / "minerva_test.jsonl")] == ["20", "4"]


def test_minerva_without_answer_takes_the_last_box_of_the_solution():
    rows = load_benchmark(FIXTURES / "minerva_solution_only.json")
    assert [r["answer"] for r in rows] == ["21", "0.25"]


def test_olympiadbench_takes_the_first_final_answer():
    rows = load_benchmark(FIXTURES / "olympiadbench_test.jsonl")
    assert [r["answer"] for r in rows] == ["$2$", "23"]
    assert rows[1]["problem"] == "What is the smallest prime greater than $20$?"


def test_aime_reads_lowercase_and_capitalised_fields_and_integer_answers():
    assert [r["answer"] for r in load_benchmark(FIXTURES / "aime_2024.jsonl")] == ["9", "24"]
    assert load_benchmark(FIXTURES / "aime_capitalised.jsonl") == [
        {"problem": "Find $17 + 25$.", "answer": "42"}, {"problem": "Find $100 - 1$.", "answer": "99"}]


def test_limit_keeps_the_first_rows():
    assert len(load_benchmark(FIXTURES / "math_500_test.csv", limit=2)) == 2


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_ROWS = {
    "gsm8k_empty_final_answer": ("q.jsonl", '{"problem": "x", "answer": "1"}\n{"question": "y", "answer": "2 ####"}\n',
                                 "line 2: no usable problem and answer"),
    "missing_answer": ("q.jsonl", '{"problem": "x", "answer": "1"}\n\n{"problem": "y"}\n',
                       "line 3: no field 'answer' or 'Answer'"),
    "invalid_json": ("q.jsonl", '{"problem": "x", "answer": "1"}\n{"problem": \n', "line 2: invalid JSON"),
    "not_an_object": ("q.json", '[{"problem": "x", "answer": "1"}, ["y", "2"]]', "row 2: expected an object"),
    "empty_problem": ("q.csv", "Question,Answer\nx,1\n ,2\n", "row 2: no usable problem and answer"),
    "no_box_in_solution": ("q.jsonl", '{"problem": "x", "solution": "it is 3"}\n', "line 1: no usable problem"),
    "empty_final_answer": ("q.jsonl", '{"question": "x", "final_answer": []}\n', "line 1: no usable problem"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_an_unusable_row_is_an_error_naming_file_and_row(tmp_path, kind):
    name, text, what = BAD_ROWS[kind]
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        load_benchmark(path)
    assert str(err.value).startswith(f"{path}: {what}")


def test_the_gsm8k_reader_rejects_an_answer_without_hashes():
    with pytest.raises(ValueError, match="no '####"):
        benchmarks.read_gsm8k({"question": "x", "answer": "5"})


def test_a_json_file_must_hold_a_list(tmp_path):
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_benchmark(write(tmp_path, "q.json", '{"problem": "x", "answer": "1"}'))


def test_unknown_names_and_formats_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a benchmark name.*gsm8k"):
        load_benchmark("no-such-benchmark")
    with pytest.raises(ValueError, match="unknown format"):
        load_benchmark(write(tmp_path, "q.txt", "x"))


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_benchmark(write(tmp_path, "q.parquet", ""))


def test_parquet_is_read_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    path = tmp_path / "olympiad.parquet"
    pq.write_table(pa.table({"question": ["Find x."], "final_answer": [["5", "$5$"]]}), path)
    assert load_benchmark(path) == [{"problem": "Find x.", "answer": "5"}]


HUB_FIXTURES = {"gsm8k": "gsm8k_test.jsonl", "math500": "math500_test.jsonl", "minerva": "minerva_test.jsonl",
                "olympiad": "olympiadbench_test.jsonl", "aime24": "aime_2024.jsonl", "aime25": "aime_capitalised.jsonl",
                "dapo": "dapo_math_17k.jsonl"}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_benchmark_name_downloads_its_dataset_file_from_the_hub(name, monkeypatch):
    import huggingface_hub
    calls = []

    def fake_download(repo_id, filename, repo_type=None, **kw):
        calls.append((repo_id, filename, repo_type))
        return str(FIXTURES / HUB_FIXTURES[name])

    def fake_list(repo_id, repo_type=None, **kw):
        assert repo_type == "dataset"
        return [".gitattributes", "README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", fake_list)
    rows = load_benchmark(name, limit=1)
    repo, file, _ = REGISTRY[name]
    expected_file = "data/test-00000-of-00001.parquet" if "*" in file else file
    assert calls == [(repo, expected_file, "dataset")]
    assert len(rows) == 1 and rows[0]["problem"] and rows[0]["answer"]


def test_the_registry_covers_the_six_table1_benchmarks_with_the_releases_sources_and_the_training_set():
    assert set(REGISTRY) == {"gsm8k", "math500", "minerva", "olympiad", "aime24", "aime25", "dapo"}
    assert REGISTRY["dapo"][:2] == ("BytedTsinghua-SIA/DAPO-Math-17k", "data/dapo-math-17k.parquet")
    repos = {name: repo for name, (repo, _, _) in REGISTRY.items()}
    assert repos["gsm8k"] == "openai/gsm8k" and repos["aime25"] == "yentinglin/aime_2025"
    assert repos["minerva"] == "zwhe99/simplerl-minerva-math" and repos["olympiad"] == "zwhe99/simplerl-OlympiadBench"
    assert REGISTRY["gsm8k"][2] is benchmarks.read_gsm8k and REGISTRY["olympiad"][2] is benchmarks.read_olympiad


def test_rows_round_trip_through_the_question_loader(tmp_path):
    from relay_ref.data import load_questions, save_jsonl
    rows = load_benchmark(FIXTURES / "gsm8k_test.jsonl")
    save_jsonl(rows, tmp_path / "q.jsonl")
    assert load_questions(tmp_path / "q.jsonl") == rows
    assert json.loads((tmp_path / "q.jsonl").read_text().splitlines()[1])["answer"] == "1200"
