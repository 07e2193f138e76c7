"""The relay's modes where they meet the parser (paper §5.4 Fixed-k, D14's token-level random caller).

Lookup models as in test_relay.py: a model writes `table[token]` next, so every expected response is
read off the tables.
"""
import pytest
from test_relay import CALL, DIGIT, END, EOS, chain, run

from relay_ref.commands import COMMAND, TEACHER, TEXT


@pytest.mark.parametrize("requested, k", [(9, 2), (2, 5)])
def test_fixed_k_gives_the_teacher_exactly_k_tokens_whatever_n_was_requested(requested, k):
    """Fixed-k overrides n both ways: fewer tokens than requested (9 -> 2) and more (2 -> 5)."""
    student = chain(3, 10, CALL, DIGIT[requested], END) | {20 + k - 1: 11, 11: EOS}
    teacher = chain(10, *range(20, 30))
    tokens, mask, calls, _ = run(student, teacher, fixed_call_tokens=k)
    assert tokens == [10, CALL, DIGIT[requested], END, *range(20, 20 + k), 11, EOS]
    assert sum(mask) == k and calls == 1


def test_the_random_caller_never_fires_inside_an_open_command():
    """q = 1: after every student text token the teacher takes k = 1 tokens, but never while `<call>...`
    is still open; the command, once closed, executes with its own n = 2."""
    student = {3: 10, 20: CALL, CALL: DIGIT[2], DIGIT[2]: END, 22: EOS}
    teacher = chain(10, 20, 21, 22)
    tokens, mask, calls, out = run(student, teacher, random_calls=(1.0, 1))
    assert tokens == [10, 20, CALL, DIGIT[2], END, 21, 22, EOS]
    assert out.authors[0] == [TEXT, TEACHER, COMMAND, COMMAND, COMMAND, TEACHER, TEACHER, TEXT]
    assert calls == 2  # the random call and the student's own


def test_the_random_caller_at_q_zero_changes_nothing():
    student = chain(3, 10, 11, 12, EOS)
    assert run(student, {}, random_calls=(0.0, 3))[0] == run(student, {})[0] == [10, 11, 12, EOS]


def test_the_teacher_never_writes_a_command_token():
    """The teacher's favourite next token is `<call>`; it is banned, so the teacher writes its next best (0)."""
    student = chain(3, 11, CALL, DIGIT[2], END) | {0: EOS}
    tokens, mask, calls, _ = run(student, {11: CALL})
    assert tokens == [11, CALL, DIGIT[2], END, 0, 0, EOS]
    assert mask == [False] * 4 + [True, True, False] and calls == 1
