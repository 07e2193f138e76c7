"""Evaluation arithmetic shaped like the paper (abstract, Fig. 1, Table 1, §4.2; D6, D14)."""
import pytest
import torch

from relay_ref import evaluation
from relay_ref.commands import COMMAND, TEACHER, TEXT, CommandTokens
from relay_ref.evaluation import evaluate, markdown_table, matched_random_calls, random_router
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.relay import RelayOutput, relay_generate
from scripts.evaluate import parse_benchmark, router_rows, router_summary, teacher_spans

# Table 1, Qwen3-1.7B student: Minerva, MATH500, GSM8K, Olympiad, AIME25, AIME24.
BENCHES = ["minerva", "math500", "gsm8k", "olympiad", "aime25", "aime24"]
BASE = [33.82, 74.60, 82.64, 43.11, 8.75, 12.08]  # average 42.50
RELAY = [43.75, 81.40, 86.28, 55.70, 12.71, 17.29]  # Difficulty-Aware, average 49.52, call ratio 1.07%
TEACHER_8B = [48.16, 83.20, 93.63, 56.89, 17.92, 24.90]  # average 54.12


def test_random_router_reproduces_the_papers_cost_reduction_and_margin():
    r = random_router(42.50, 54.12, 49.52, 0.0107)
    assert r["matched_teacher_share"] == pytest.approx(0.604, abs=5e-4)  # "about 60% of the gap"
    assert round(r["cost_reduction"], 3) == 0.982  # 98.2%
    assert r["router_accuracy_at_equal_cost"] == pytest.approx(42.62, abs=5e-3)
    assert round(r["margin"], 1) == 6.9  # 6.9 points


def test_random_router_for_the_small_student_matches_the_reference_notes():
    r = random_router(27.17, 54.12, 33.04, 0.0077)  # Qwen3-0.6B, Difficulty-Aware
    assert (round(r["matched_teacher_share"], 3), round(r["cost_reduction"], 3), round(r["margin"], 1)) == \
        (0.218, 0.965, 5.7)


def table1_results():
    res = {}
    for mode, row, ratio in (("student", BASE, 0.0), ("teacher", TEACHER_8B, 1.0), ("relay", RELAY, 0.0107)):
        res[mode] = {b: {"accuracy": a / 100, "call_ratio": ratio} for b, a in zip(BENCHES, row)}
    return res


def test_the_script_summary_computes_the_router_from_table1_per_benchmark_numbers():
    summary, text = router_summary(table1_results(), BENCHES)
    assert summary["acc_student"] == pytest.approx(42.50, abs=5e-3)
    assert summary["acc_relay"] == pytest.approx(49.52, abs=5e-3)
    assert summary["acc_teacher"] == pytest.approx(54.12, abs=5e-3)
    assert "98.2% cost reduction" in text and "leads by 6.90 points" in text and "60.4% of the questions" in text


def test_the_router_row_interpolates_each_benchmark_at_the_relays_call_ratio():
    rows = router_rows(table1_results(), BENCHES)
    assert rows["gsm8k"]["accuracy"] == pytest.approx((82.64 + 0.0107 * (93.63 - 82.64)) / 100)
    assert all(r["call_ratio"] == 0.0107 for r in rows.values())


def test_router_summary_says_when_the_comparison_is_undefined():
    res = table1_results()
    res["relay"] = res["student"]
    assert "not more accurate than the student alone" in router_summary(res, BENCHES)[1]
    res["teacher"] = res["student"]
    assert "comparison is undefined" in router_summary(res, BENCHES)[1]


@pytest.mark.parametrize("ratio", [0.0, 0.0107, 0.05, 0.3, 0.6])
@pytest.mark.parametrize("k", [1, 4, 20])
def test_matched_random_calls_has_the_target_expected_teacher_share(ratio, k):
    q, k_out = matched_random_calls(ratio, k)
    assert k_out == k and 0 <= q
    assert q * k / (1 + q * k) == pytest.approx(ratio)  # each student token brings k teacher tokens w.p. q


# A lookup model writes table[current token] next (token 0 otherwise): zero attention/MLP, one-hot embedding.
V, EOS = 48, 47
CMDS = CommandTokens(40, 41, tuple(range(30, 40)))


def lookup_model(table):
    cfg = Qwen3Config(vocab_size=V, hidden_size=V, intermediate_size=4, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, head_dim=4)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
        model.model.embed_tokens.weight.copy_(torch.eye(V))
        for cur, nxt in table.items():
            model.lm_head.weight[nxt, cur] = 1.0
    return model


@pytest.fixture
def one_thread():
    """A second intra-op thread spin-waits for a core a colleague's process holds on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_random_caller_reaches_the_matched_call_ratio_in_a_real_relay_run(one_thread):
    # The student cycles 10 -> 11 -> 12 -> 10 ... and resumes at 10 after teacher tokens; the teacher writes 20s.
    student = lookup_model({1: 10, 10: 11, 11: 12, 12: 10, 20: 10})
    teacher = lookup_model({t: 20 for t in (10, 11, 12, 20)})
    target = 0.2
    out = relay_generate(student, teacher, [[1]] * 16, commands=CMDS, max_new_tokens=200, eos_ids=(EOS,),
                         teacher_free=True, random_calls=matched_random_calls(target, 4), seed=0)
    teacher_tokens = sum(a == TEACHER for row in out.authors for a in row)
    assert teacher_tokens / sum(map(len, out.tokens)) == pytest.approx(target, abs=0.03)
    for row in out.authors:  # every span is k = 4 tokens, except one the budget cut at the end
        spans = teacher_spans([{"authors": row}])
        assert all(n == 4 for n in spans[:-1]) and spans[-1] <= 4


class FakeTokenizer:
    commands, eos_ids = CMDS, (EOS,)

    def __len__(self):
        return V

    def chat_prompt(self, question):
        return [1, 2]

    def decode(self, ids):
        return " ".join(map(str, ids))


def test_the_call_ratio_is_summed_over_responses_not_averaged_per_response(monkeypatch):
    authors = [[TEXT, COMMAND, COMMAND, COMMAND, TEACHER, TEACHER, TEXT, TEXT], [TEXT, TEXT]]  # 2/8 and 0/2

    def fake_relay(student, teacher, prompts, **kw):
        rows = authors[:len(prompts)]
        return RelayOutput([[5] * len(a) for a in rows], rows, [1, 0][:len(prompts)], {})

    monkeypatch.setattr(evaluation, "relay_generate", fake_relay)
    questions = [{"problem": "a", "answer": "1"}, {"problem": "b", "answer": "2"}]
    r = evaluate("relay", None, None, FakeTokenizer(), questions, batch_size=2)
    assert r["call_ratio"] == pytest.approx(2 / 10)  # D6 micro-average; the mean of per-response ratios is 1/8
    assert [rec["teacher_tokens"] for rec in r["records"]] == [2, 0]
    assert r["records"][0]["authors"] == authors[0] and r["records"][0]["token_ids"] == [5] * 8


def test_teacher_alone_counts_as_all_teacher_tokens_and_student_alone_as_none(monkeypatch):
    monkeypatch.setattr(evaluation, "generate", lambda model, prompts, n, **kw: [[7, 7, EOS] for _ in prompts])
    questions = [{"problem": "a", "answer": "1"}]
    assert evaluate("teacher", None, None, FakeTokenizer(), questions)["call_ratio"] == 1.0
    student = evaluate("student", None, None, FakeTokenizer(), questions)
    assert student["call_ratio"] == 0.0 and student["records"][0]["authors"] == [TEXT] * 3


def test_markdown_table_has_table1_shape_and_averages_call_ratios_over_benchmarks():
    results = {"student": {"a": {"accuracy": 0.5, "call_ratio": 0.0}, "b": {"accuracy": 0.25, "call_ratio": 0.0}},
               "relay": {"a": {"accuracy": 0.75, "call_ratio": 0.1}, "b": {"accuracy": 0.5, "call_ratio": 0.3}}}
    lines = markdown_table(results, ["a", "b"]).splitlines()
    assert lines[0] == "| Method | a | b | Average | Avg. Call Ratio |"
    assert len(lines) == 2 + len(results) and all(line.count("|") == 6 for line in lines)
    assert lines[2] == "| student | 50.00 | 25.00 | 37.50 | – |"
    assert lines[3] == "| relay | 75.00 | 50.00 | 62.50 | 20.00% |"  # D6: mean of the per-benchmark ratios


def test_teacher_spans_are_the_runs_of_teacher_tokens():
    records = [{"authors": [TEXT, COMMAND, TEACHER, TEACHER, TEXT, TEACHER]}, {"authors": [TEXT]}]
    assert teacher_spans(records) == [2, 1]


def test_benchmark_specs_name_their_columns():
    assert parse_benchmark("gsm8k") == ("gsm8k", "gsm8k")
    assert parse_benchmark("toy=some/dir/test.jsonl") == ("toy", "some/dir/test.jsonl")
    assert parse_benchmark("some/dir/aime.csv") == ("aime", "some/dir/aime.csv")


def test_a_call_inside_the_box_does_not_hide_the_answer(monkeypatch):
    """D13 on the response's text without command tokens (D3): `\\box<call>8</call>ed{42}` answers 42."""
    from relay_ref.tokenizer import load_tokenizer
    tok = load_tokenizer("weights/toy/student")
    c = tok.commands
    student, call, teacher = tok.encode("So \\box"), [c.call_id, c.digit_ids[8], c.end_id], tok.encode("ed{42}")
    tokens = student + call + teacher + [tok.eos_ids[0]]
    authors = [TEXT] * len(student) + [COMMAND] * len(call) + [TEACHER] * len(teacher) + [TEXT]
    monkeypatch.setattr(evaluation, "relay_generate", lambda *a, **kw: RelayOutput([tokens], [authors], [1], {}))
    r = evaluate("relay", None, None, tok, [{"problem": "6*7", "answer": "42"}])
    assert r["accuracy"] == 1.0
    assert "ed{42}" in r["records"][0]["response"] and "\\boxed{42}" not in r["records"][0]["response"]
