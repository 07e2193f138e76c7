"""`evaluate` wires each mode to the right sampler settings (paper §4.2, D14): the random caller's student
cannot call on its own (the baseline's calls are the coin's alone), and avg@k samples every question k times."""
from test_evaluation import CMDS, FakeTokenizer, lookup_model

from relay_ref.commands import COMMAND, TEACHER
from relay_ref.evaluation import evaluate

CALL, END, DIGIT_1 = CMDS.call_id, CMDS.end_id, CMDS.digit_ids[1]
QUESTIONS = [{"problem": "a", "answer": "1"}, {"problem": "b", "answer": "2"}]


def eager_caller():
    """A student that calls after every token: <call>1</call>, then again."""
    return lookup_model({t: CALL for t in range(CALL)} | {CALL: DIGIT_1, DIGIT_1: END})


def test_the_random_callers_student_cannot_call_by_itself():
    teacher = lookup_model({})
    caller = evaluate("relay", eager_caller(), teacher, FakeTokenizer(), QUESTIONS, max_new_tokens=8)
    assert caller["call_ratio"] > 0  # in relay mode this student calls
    r = evaluate("random-caller", eager_caller(), teacher, FakeTokenizer(), QUESTIONS, max_new_tokens=8,
                 random_calls=(0.0, 1))
    assert r["call_ratio"] == 0.0
    assert not any(a in (COMMAND, TEACHER) for rec in r["records"] for a in rec["authors"])


def test_avg_at_k_samples_every_question_k_times():
    r = evaluate("student", lookup_model({}), None, FakeTokenizer(), QUESTIONS, max_new_tokens=3, samples=3,
                 temperature=1.0)
    assert len(r["records"]) == 6 and r["samples"] == 3 and r["questions"] == 2
    assert [rec["problem"] for rec in r["records"]] == ["a"] * 3 + ["b"] * 3
