"""Question files, the D11 warm-up construction and the D12 filter (paper §3.1, §3.2.2)."""
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_ref.commands import CommandTokens
from relay_ref.data import insert_commands, keep_by_pass_rate, load_questions, save_jsonl

# Command ids far from the response ids (0..99), so a test can tell them apart.
CMD = CommandTokens(call_id=1000, end_id=1001, digit_ids=tuple(range(2000, 2010)))


# ---------------------------------------------------------------- question files

def test_load_questions_keeps_extra_fields_and_skips_blank_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2", "source": "x"}\n\n{"problem": "2+2?", "answer": 4}\n')
    assert load_questions(path) == [{"problem": "1+1?", "answer": "2", "source": "x"},
                                    {"problem": "2+2?", "answer": "4"}]


BAD_LINES = {
    "invalid_json": ('{"problem": "x", "answer": ', "invalid JSON"),
    "not_an_object": ('["x", "y"]', "JSON object"),
    "missing_problem": ('{"answer": "1"}', "missing field 'problem'"),
    "missing_answer": ('{"problem": "x"}', "missing field 'answer'"),
    "problem_not_string": ('{"problem": 3, "answer": "1"}', "'problem' must be a string"),
    "answer_not_string": ('{"problem": "x", "answer": [1]}', "'answer' must be a string"),
    "answer_bool": ('{"problem": "x", "answer": true}', "'answer' must be a string"),
    "empty_problem": ('{"problem": "  ", "answer": "1"}', "'problem' is empty"),
    "empty_answer": ('{"problem": "x", "answer": ""}', "'answer' is empty"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_bad_line_names_file_and_line(tmp_path, kind):
    line, what = BAD_LINES[kind]
    path = tmp_path / "questions.jsonl"
    path.write_text('{"problem": "ok", "answer": "1"}\n\n' + line + "\n")
    with pytest.raises(ValueError) as err:
        load_questions(path)
    assert f"{path}:3:" in str(err.value) and what in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_questions(tmp_path / "nope.jsonl")


def test_save_jsonl_round_trips_and_replaces(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    rows = [{"problem": "π ≈ ?", "answer": "3.14", "pass_rate": 0.7}, {"problem": "b", "answer": "c"}]
    save_jsonl([{"problem": "old", "answer": "0"}], path)
    save_jsonl(rows, path)
    assert load_questions(path) == rows
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"], "no temp file left behind"


def test_save_jsonl_failure_keeps_old_file(tmp_path):
    path = tmp_path / "out.jsonl"
    save_jsonl([{"problem": "old", "answer": "0"}], path)
    with pytest.raises(TypeError):
        save_jsonl([{"problem": "new", "answer": "1"}, {"problem": object(), "answer": "2"}], path)
    assert load_questions(path) == [{"problem": "old", "answer": "0"}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


# ---------------------------------------------------------------- warm-up construction (D11)

def split_commands(tokens):
    """Undo the construction: the response tokens, and (boundary t, n) for every command found."""
    response, found, i = [], [], 0
    while i < len(tokens):
        if tokens[i] == CMD.call_id:
            end = tokens.index(CMD.end_id, i)
            digits = "".join(str(CMD.digit_ids.index(d)) for d in tokens[i + 1:end])
            found.append((len(response), int(digits)))
            i = end + 1
        else:
            response.append(tokens[i])
            i += 1
    return response, found


def is_d_times_power_of_ten(n):
    return any(n == d * 10 ** j for d in range(1, 10) for j in range(4))


@given(st.lists(st.integers(0, 99), max_size=40), st.integers(0, 2**32), st.integers(0, 5))
def test_warmup_construction(response, seed, max_commands):
    out = insert_commands(response, CMD, random.Random(seed), max_commands)
    back, found = split_commands(out)
    assert back == response, "the response tokens are untouched and in order"
    assert len(found) <= min(max_commands, len(response))
    boundaries = [t for t, _ in found]
    assert boundaries == sorted(set(boundaries)), "distinct boundaries"
    for t, n in found:
        remaining = len(response) - t
        assert 0 <= t < len(response) and remaining >= 1, "every command has a response token after it"
        # n = min(d * 10^j, remaining): either the sampled value fits, or it was capped to what remains.
        assert n == remaining or (is_d_times_power_of_ten(n) and n < remaining)


def test_commands_per_example_cover_0_to_3_uniformly():
    rng = random.Random(0)
    response = list(range(50))
    counts = Counter(len(split_commands(insert_commands(response, CMD, rng))[1]) for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(850 < counts[k] < 1150 for k in range(4)), counts


def test_n_values_cover_every_digit_and_magnitude():
    rng = random.Random(1)
    length = 10_000
    response = list(range(length))  # token value = its index, so the token after a command is its boundary
    big = CommandTokens(call_id=10**6, end_id=10**6 + 1, digit_ids=tuple(range(10**7, 10**7 + 10)))
    sampled = set()
    for _ in range(3000):
        out, end = insert_commands(response, big, rng), 0
        while big.call_id in out[end:]:
            i = out.index(big.call_id, end)
            end = out.index(big.end_id, i)
            n = int("".join(str(big.digit_ids.index(d)) for d in out[i + 1:end]))
            if n < length - out[end + 1]:  # not capped: n is the sampled d * 10^j itself
                sampled.add((int(str(n)[0]), len(str(n)) - 1))
    assert sampled == {(d, j) for d in range(1, 10) for j in range(4)}


@given(st.integers(0, 3), st.integers(0, 2**32))
def test_max_exponent_bounds_the_magnitude_of_n(max_exponent, seed):
    """The toy preset's scaled D11: n = d * 10^j with j <= max_exponent (before the cap by what remains)."""
    rng, response = random.Random(seed), [0] * 10_000
    for t, n in split_commands(insert_commands(response, CMD, rng, 3, max_exponent))[1]:
        assert n < 10 ** (max_exponent + 1)
        assert is_d_times_power_of_ten(n) or n == len(response) - t


@given(st.lists(st.integers(0, 99), min_size=1, max_size=40), st.data(), st.integers(0, 2**32))
def test_commands_go_only_at_the_allowed_boundaries(response, data, seed):
    """The toy preset's placement: commands only where the student was unsure (any given set of boundaries)."""
    allowed = data.draw(st.sets(st.integers(0, len(response) - 1)))
    out = insert_commands(response, CMD, random.Random(seed), 3, boundaries=allowed)
    back, found = split_commands(out)
    assert back == response
    assert len(found) <= min(3, len(allowed))
    assert {t for t, _ in found} <= allowed


def test_allowed_boundaries_cover_every_count_and_all_boundaries_match_d11():
    counts = Counter(len(split_commands(insert_commands(list(range(50)), CMD, random.Random(s), 3,
                                                        boundaries=[4, 9]))[1]) for s in range(300))
    assert set(counts) == {0, 1, 2}, "k ~ U{0..3}, capped by the two allowed boundaries"
    for s in range(20):
        everywhere = insert_commands(list(range(50)), CMD, random.Random(s), boundaries=range(50))
        assert everywhere == insert_commands(list(range(50)), CMD, random.Random(s))
    with pytest.raises(ValueError, match="boundaries must lie in 0..49"):
        insert_commands(list(range(50)), CMD, random.Random(0), boundaries=[50])


def test_insertion_is_reproducible_and_loss_mask_is_callers_job():
    a = insert_commands(list(range(30)), CMD, random.Random(5))
    assert a == insert_commands(list(range(30)), CMD, random.Random(5))
    assert insert_commands([], CMD, random.Random(5)) == []


# ---------------------------------------------------------------- pass-rate filter (D12)

def test_keep_by_pass_rate():
    assert keep_by_pass_rate([0.0, 0.5, 0.49, 1.0, 5 / 10, 0.3]) == [1, 3, 4]
    assert keep_by_pass_rate([0.2, 0.6], threshold=0.7) == []
