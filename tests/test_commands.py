"""The command grammar (paper §3.1; D1-D3, D6, D8): one streaming parser for sampler, training and evaluation.

Streams are written as words: `<call>`, `</call>`, a digit 0-9 (a digit token), `a`/`b`/`c` (text), `EOS`.
Square brackets mark a teacher span: `[ ... ]` tokens were written by the teacher, not sampled by the student.
Authors are written `s` (student text), `c` (student command token), `t` (teacher).
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ref.commands import (COMMAND, TEACHER, TEXT, CommandParser, CommandTokens, Segment, call_ratio,
                                format_call, label_response, loss_mask, requested_calls, split_response,
                                strip_commands, teacher_view)

CALL, END, EOS = 100, 101, 1
DIGIT = tuple(range(10, 20))  # DIGIT[d] is the token of digit d
CMDS = CommandTokens(CALL, END, DIGIT)
WORDS = {"<call>": CALL, "</call>": END, "a": 2, "b": 3, "c": 4, "EOS": EOS} | {str(d): DIGIT[d] for d in range(10)}
AUTHORS = {"s": TEXT, "c": COMMAND, "t": TEACHER}


def parse_stream(text):
    """Word notation -> (token ids, teacher mask)."""
    tokens, mask, teacher = [], [], False
    for word in text.split():
        if word in "[]":
            teacher = word == "["
        else:
            tokens.append(WORDS[word])
            mask.append(teacher)
    return tokens, mask


# (name, stream, authors, n of every well-formed command)
D2_CASES = [
    ("well-formed", "a <call> 3 0 </call> b", "s c c c c s", [30]),
    ("four digits, the most", "<call> 9 9 9 9 </call>", "c c c c c c", [9999]),
    ("leading zeros are fine", "<call> 0 0 0 5 </call>", "c c c c c c", [5]),
    ("value 0 is void", "<call> 0 </call> a", "c c c s", []),
    ("value 00 is void", "<call> 0 0 </call>", "c c c c", []),
    ("no digits is void", "<call> </call> a", "c c s", []),
    ("a fifth digit breaks it and is text; the `</call>` after it is stray",
     "<call> 1 2 3 4 5 </call>", "c c c c c s c", []),
    ("text inside breaks it; later digits are text", "<call> 1 a 2 </call>", "c c s s c", []),
    ("`<call>` inside an open command voids it and opens a new one", "<call> 1 <call> 2 </call>", "c c c c c", [2]),
    ("`</call>` outside a command is a void command token", "a </call> b", "s c s", []),
    ("EOS inside a command voids it and is text", "<call> 1 EOS", "c c s", []),
    ("a command still open at the end is void", "a <call> 1 2", "s c c c", []),
    ("two calls in one response", "<call> 5 </call> a <call> 1 2 </call> b", "c c c s c c c c s", [5, 12]),
    ("digits outside a command are text", "1 2 a <call> 3 </call> 4", "s s s c c c s", [3]),
    ("only student tokens are parsed", "a <call> 2 </call> [ <call> 5 </call> b ] c", "s c c c t t t t s", [2]),
]


@pytest.mark.parametrize("stream, authors, calls", [pytest.param(*row[1:], id=row[0]) for row in D2_CASES])
def test_d2_grammar_cases(stream, authors, calls):
    tokens, mask = parse_stream(stream)
    assert label_response(tokens, mask, CMDS) == [AUTHORS[a] for a in authors.split()]
    assert requested_calls(tokens, mask, CMDS) == calls


def test_n_is_reported_by_the_closing_token_and_pending_tracks_the_open_command():
    parser = CommandParser(CMDS)
    seen = []
    for token in parse_stream("a <call> 4 2 </call> <call> b")[0]:
        seen.append((parser.feed(token), parser.pending))
    assert seen == [((TEXT, None), False), ((COMMAND, None), True), ((COMMAND, None), True),
                    ((COMMAND, None), True), ((COMMAND, 42), False), ((COMMAND, None), True), ((TEXT, None), False)]


def test_teacher_view_drops_command_tokens_but_keeps_breaking_text():
    tokens, mask = parse_stream("a <call> 1 b <call> 1 2 3 4 5 </call> [ c ] EOS")
    view = teacher_view(tokens, label_response(tokens, mask, CMDS))
    assert view == parse_stream("a b 5 c EOS")[0]


def test_split_response_names_each_command_and_span():
    tokens, mask = parse_stream("a b <call> 3 </call> [ c c ] </call> <call> <call> 7 </call> EOS")
    assert split_response(tokens, mask, CMDS) == [
        Segment("text", 0, 2), Segment("call", 2, 5, 3), Segment("teacher", 5, 7), Segment("void", 7, 8),
        Segment("void", 8, 9), Segment("call", 9, 12, 7), Segment("text", 12, 13)]


def test_loss_mask_and_call_ratio_follow_the_authors():
    tokens, mask = parse_stream("a <call> 2 </call> [ b c ] EOS")
    authors = label_response(tokens, mask, CMDS)
    assert loss_mask(authors) == [True, True, True, True, False, False, True]  # D8: commands and EOS trained
    assert loss_mask(authors, train_on_teacher_tokens=True) == [True] * 7  # the release's behaviour
    assert call_ratio(mask) == 2 / 7  # D6: EOS and command tokens count in the denominator
    assert call_ratio([]) == 0.0


# Property tests: arbitrary streams over the grammar's alphabet, each token a teacher token with chance 1/4.
ALPHABET = [CALL, END, *DIGIT, 2, 3, EOS]
responses = st.lists(st.tuples(st.sampled_from(ALPHABET), st.integers(0, 3).map(lambda x: x == 0)),
                     max_size=40).map(lambda pairs: ([t for t, _ in pairs], [m for _, m in pairs]))
PROPERTY = settings(max_examples=100, deadline=None)
KIND_AUTHOR = {"text": TEXT, "call": COMMAND, "void": COMMAND, "teacher": TEACHER}


def stream_through_parser(tokens, mask):
    """What the relay sampler sees: student tokens fed one by one, teacher tokens skipped."""
    parser, authors, calls, interrupted = CommandParser(CMDS), [], [], False
    for token, is_teacher in zip(tokens, mask):
        if is_teacher:
            interrupted |= parser.pending  # the sampler never hands over inside an open command
            authors.append(TEACHER)
            continue
        author, n = parser.feed(token)
        assert n is None or (token == END and 1 <= n <= 9999)
        authors.append(author)
        calls += [] if n is None else [n]
    return authors, calls, interrupted


@PROPERTY
@given(st.lists(st.integers(-10**9, 10**9) | st.sampled_from(ALPHABET), max_size=60))
def test_parser_never_raises_on_any_token_stream(tokens):
    parser = CommandParser(CMDS)
    for token in tokens:
        author, n = parser.feed(token)
        assert author in (TEXT, COMMAND) and isinstance(parser.pending, bool)
        if token in (CALL, END):
            assert author == COMMAND  # D3 removes every `<call>` and `</call>` the student writes
        elif token not in DIGIT:
            assert author == TEXT


@PROPERTY
@given(responses)
def test_streaming_and_whole_sequence_functions_agree(response):
    tokens, mask = response
    authors, calls, interrupted = stream_through_parser(tokens, mask)
    assert label_response(tokens, mask, CMDS) == authors
    assert requested_calls(tokens, mask, CMDS) == calls
    segments = split_response(tokens, mask, CMDS)
    assert [KIND_AUTHOR[s.kind] for s in segments for _ in range(s.start, s.end)] == authors
    if not interrupted:  # then every well-formed command is one "call" segment: <call>, its digits, </call>
        assert [s.n for s in segments if s.kind == "call"] == calls
        for s in segments:
            if s.kind == "call":
                digits = tokens[s.start + 1:s.end - 1]
                assert tokens[s.start] == CALL and tokens[s.end - 1] == END and 1 <= len(digits) <= 4
                assert int("".join(str(DIGIT.index(t)) for t in digits)) == s.n


@PROPERTY
@given(responses)
def test_split_response_segments_are_contiguous_and_cover_the_response(response):
    tokens, mask = response
    segments = split_response(tokens, mask, CMDS)
    assert [s.start for s in segments] + [len(tokens)] == [0] + [s.end for s in segments]
    assert all(s.start < s.end and (s.n is not None) == (s.kind == "call") for s in segments)


@PROPERTY
@given(responses)
def test_teacher_view_has_no_student_command_token_and_stripping_is_idempotent(response):
    tokens, mask = response
    stripped = strip_commands(tokens, CMDS)
    assert CALL not in stripped and END not in stripped
    assert strip_commands(stripped, CMDS) == stripped
    authors = label_response(tokens, mask, CMDS)
    view = teacher_view(tokens, authors)
    assert view == [t for t, a in zip(tokens, authors) if a != COMMAND]
    # Command ids in the view come only from teacher spans (which the relay sampler bans anyway).
    assert sum(t in (CALL, END) for t in view) == sum(t in (CALL, END) for t, m in zip(tokens, mask) if m)


@PROPERTY
@given(responses)
def test_loss_mask_is_exactly_the_student_tokens(response):
    tokens, mask = response
    authors = label_response(tokens, mask, CMDS)
    assert loss_mask(authors) == [not m for m in mask]
    assert loss_mask(authors, train_on_teacher_tokens=True) == [True] * len(tokens)
    assert call_ratio(mask) == (sum(mask) / len(mask) if mask else 0.0)


@PROPERTY
@given(st.integers(1, 9999), st.integers(0, 3), st.lists(st.sampled_from([*DIGIT, 2, 3, EOS]), max_size=5),
       st.lists(st.sampled_from([*DIGIT, 2, 3, EOS]), max_size=5))
def test_a_formatted_command_parses_back_to_its_n(n, zeros, before, after):
    command = format_call(n, CMDS)
    zeros = min(zeros, 4 - (len(command) - 2))  # leading zeros, keeping at most 4 digits
    command = command[:1] + [DIGIT[0]] * zeros + command[1:]
    tokens = before + command + after
    assert requested_calls(tokens, [False] * len(tokens), CMDS) == [n]
    assert strip_commands(tokens, CMDS) == before + after


def test_every_n_from_1_to_9999_round_trips():
    for n in range(1, 10000):
        tokens = format_call(n, CMDS)
        assert requested_calls(tokens, [False] * len(tokens), CMDS) == [n], n


@PROPERTY
@given(st.lists(st.sampled_from(ALPHABET), max_size=20), st.integers(1, 9999))
def test_a_command_inside_a_teacher_span_triggers_nothing(teacher_tokens, n):
    """D2: only student spans are parsed."""
    student = format_call(n, CMDS)
    tokens = student + teacher_tokens + [EOS]
    mask = [False] * len(student) + [True] * len(teacher_tokens) + [False]
    assert requested_calls(tokens, mask, CMDS) == [n]
    assert label_response(tokens, mask, CMDS)[len(student):] == [TEACHER] * len(teacher_tokens) + [TEXT]
