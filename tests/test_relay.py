"""The relay sampler (paper §3.1, D2-D7), checked with models whose next token is known in advance.

A *lookup model* is a real Qwen3ForCausalLM whose attention and MLP outputs are zeroed and whose
embedding is one-hot, so the logits depend on the current token only: it writes `table[token]` next
(and token 0 for anything not in the table). Reading a test, follow the chain of the table.
"""
import pytest
import torch
from hf_oracle import save_hf_model

import relay_ref
from relay_ref.commands import COMMAND, TEXT, CommandTokens, strip_commands
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.relay import relay_generate

V = 96
CALL, END, EOS = 60, 61, 62
DIGIT = list(range(70, 80))  # DIGIT[d] is the token of digit d
CMDS = CommandTokens(CALL, END, tuple(DIGIT))
PROMPT = [1, 2, 3]


def one_hot_model() -> Qwen3ForCausalLM:
    """Attention and MLP outputs zero, a one-hot embedding, unit norms, a zero head: the head alone decides."""
    cfg = Qwen3Config(vocab_size=V, hidden_size=V, intermediate_size=8, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, head_dim=8)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.model.norm, model.model.layers[0].input_layernorm, model.model.layers[0].post_attention_layernorm):
            norm.weight.fill_(1.0)
        model.model.embed_tokens.weight.copy_(torch.eye(V))
    return model


def lookup_model(table: dict[int, int]) -> Qwen3ForCausalLM:
    model = one_hot_model()
    with torch.no_grad():
        for cur, nxt in table.items():
            model.lm_head.weight[nxt, cur] = 1.0
    return model


def chain(*tokens) -> dict[int, int]:
    """A table that writes tokens[1] after tokens[0], tokens[2] after tokens[1], ..."""
    return dict(zip(tokens, tokens[1:]))


def run(student_table, teacher_table, max_new_tokens=30, **kw):
    out = relay_generate(lookup_model(student_table), lookup_model(teacher_table), [PROMPT], commands=CMDS,
                         max_new_tokens=max_new_tokens, eos_ids=(EOS,), **kw)
    return out.tokens[0], out.teacher_mask[0], out.calls[0], out


def authored(tokens, mask):
    return [("T" if m else "S", t) for t, m in zip(tokens, mask)]


def test_a_well_formed_call_hands_n_tokens_to_the_teacher_then_the_student_continues():
    student = chain(3, 10, 11, CALL, DIGIT[3], END) | chain(22, 12, EOS)
    teacher = chain(11, 20, 21, 22)  # the teacher's view ends "... 10 11": the command is stripped
    tokens, mask, calls, _ = run(student, teacher)
    assert tokens == [10, 11, CALL, DIGIT[3], END, 20, 21, 22, 12, EOS]
    assert mask == [False] * 5 + [True] * 3 + [False] * 2
    assert calls == 1


def test_a_teacher_eos_inside_a_call_ends_the_response():
    student = chain(3, 10, CALL, DIGIT[5], END)
    tokens, mask, calls, _ = run(student, chain(10, 20, EOS))
    assert tokens == [10, CALL, DIGIT[5], END, 20, EOS]
    assert mask == [False] * 4 + [True, True] and calls == 1


@pytest.mark.parametrize("void", [
    [CALL, END],                       # no digits
    [CALL, DIGIT[0], END],             # n = 0
    [CALL, *DIGIT[1:5], DIGIT[5]],     # a fifth digit breaks the command and is text
    [END],                             # a </call> outside a command
])
def test_void_commands_call_nobody_and_stay_in_the_students_context(void):
    student = chain(3, 10, *void, 11, EOS)
    tokens, mask, calls, out = run(student, {})
    assert tokens == [10, *void, 11, EOS]
    assert not any(mask) and calls == 0
    assert out.forward_tokens["teacher"] == 0  # the teacher never prefilled a row that never called it


def test_an_unclosed_command_broken_by_text_is_void():
    tokens, mask, calls, out = run(chain(3, CALL, DIGIT[2], 10, EOS), {})
    assert tokens == [CALL, DIGIT[2], 10, EOS] and calls == 0
    assert out.authors[0] == [COMMAND, COMMAND, TEXT, TEXT]


def test_a_call_is_cut_by_the_response_budget():
    student = chain(3, 10, CALL, DIGIT[9], END)
    tokens, mask, calls, _ = run(student, chain(10, 20, 21, 22, 23, 24, 25), max_new_tokens=7)
    assert tokens == [10, CALL, DIGIT[9], END, 20, 21, 22]  # n = 9 clamped to the 3 tokens left
    assert sum(mask) == 3 and calls == 1


def test_teacher_free_bans_the_command_tokens():
    student = chain(3, 10, CALL, DIGIT[3], END) | {0: EOS}  # banned <call>: the next best is token 0
    tokens, mask, calls, _ = run(student, chain(10, 20, 21, 22), teacher_free=True)
    assert tokens == [10, 0, EOS] and not any(mask) and calls == 0


def test_fixed_length_calls_execute_every_command_with_n_equal_k():
    student = chain(3, 10, CALL, DIGIT[9], END) | chain(21, 11, EOS)
    tokens, mask, calls, _ = run(student, chain(10, 20, 21, 22, 23), fixed_call_tokens=2)
    assert tokens == [10, CALL, DIGIT[9], END, 20, 21, 11, EOS]
    assert sum(mask) == 2 and calls == 1


def test_two_calls_in_one_response():
    # A lookup student writes the same digits after every <call>, so both calls ask for 2 tokens.
    student = chain(3, 10, CALL, DIGIT[2], END) | chain(21, 11, CALL) | {31: EOS}
    teacher = chain(10, 20, 21) | chain(11, 30, 31)
    tokens, mask, calls, _ = run(student, teacher)
    assert tokens == [10, CALL, DIGIT[2], END, 20, 21, 11, CALL, DIGIT[2], END, 30, 31, EOS]
    assert mask == [False] * 4 + [True] * 2 + [False] * 4 + [True] * 2 + [False]
    assert calls == 2


def test_max_call_tokens_caps_n_and_the_student_resumes_after_the_capped_span():
    student = chain(3, 10, CALL, DIGIT[9], END) | chain(21, 11, EOS)
    tokens, mask, calls, _ = run(student, chain(10, 20, 21, 22, 23), max_call_tokens=2)
    assert tokens == [10, CALL, DIGIT[9], END, 20, 21, 11, EOS]
    assert mask == [False] * 4 + [True] * 2 + [False] * 2 and calls == 1


def test_max_calls_leaves_later_commands_unexecuted():
    student = chain(3, 10, CALL, DIGIT[1], END) | chain(20, 11, CALL, DIGIT[1], END) | {END: 12, 12: EOS}
    tokens, mask, calls, _ = run(student, chain(10, 20) | chain(11, 21), max_calls=1)
    assert tokens == [10, CALL, DIGIT[1], END, 20, 11, CALL, DIGIT[1], END, 12, EOS]
    assert calls == 1 and sum(mask) == 1


def test_command_tokens_inside_a_teacher_span_trigger_nothing():
    # The teacher is banned from writing command tokens; were it to, they'd cost nothing (D2).
    student = chain(3, 10, CALL, DIGIT[2], END) | chain(21, EOS)
    tokens, mask, calls, _ = run(student, chain(10, 20, 21))
    assert calls == 1 and CALL not in [t for t, m in zip(tokens, mask) if m]


# --- equivalences with random models ----------------------------------------------------------------

@pytest.fixture(scope="module")
def random_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    _, s = save_hf_model(d, "student", seed=11, vocab_size=V)
    _, t = save_hf_model(d, "teacher", seed=12, vocab_size=V, num_hidden_layers=3)
    return relay_ref.load_model(s), relay_ref.load_model(t)


PROMPTS = [[5, 9, 13], [7], [40, 41, 42, 43, 44], [3, 3, 3, 3], [90, 1], [17, 18, 19], [8, 2, 8], [33]]


def test_with_calls_disabled_the_relay_equals_plain_generation(random_pair):
    student, teacher = random_pair
    out = relay_generate(student, teacher, PROMPTS, commands=CMDS, max_new_tokens=24, eos_ids=(EOS,),
                         teacher_free=True)
    assert out.tokens == relay_ref.generate(student, PROMPTS, 24, eos_ids=(EOS,), banned_ids=(CALL, END))
    assert out.forward_tokens["teacher"] == 0 and not any(map(any, out.teacher_mask))


def test_a_student_that_never_calls_relays_exactly_its_own_generation(random_pair):
    student, teacher = random_pair
    plain = relay_ref.generate(student, PROMPTS, 24, eos_ids=(EOS,))
    unused = sorted(set(range(V)) - {t for row in plain for t in row})
    commands = CommandTokens(unused[0], unused[1], tuple(DIGIT))  # tokens this student never writes here
    out = relay_generate(student, teacher, PROMPTS, commands=commands, max_new_tokens=24, eos_ids=(EOS,))
    assert out.tokens == plain and out.calls == [0] * len(PROMPTS)


def calling_student():
    """After any token it writes 10, then <call>3</call>: it calls again after every teacher span."""
    return lookup_model({t: 10 for t in range(V)} | chain(10, CALL, DIGIT[3], END))


def test_the_teachers_tokens_are_its_own_greedy_continuation_of_the_stripped_view(random_pair):
    _, teacher = random_pair
    out = relay_generate(calling_student(), teacher, PROMPTS, commands=CMDS, max_new_tokens=40, eos_ids=(EOS,))
    for prompt, tokens, mask, authors in zip(PROMPTS, out.tokens, out.teacher_mask, out.authors):
        first = mask.index(True)
        span = [t for t, m in zip(tokens[first:], mask[first:]) if m][:3]
        view = prompt + [t for t, a in zip(tokens[:first], authors[:first]) if a != COMMAND]
        assert view == prompt + strip_commands(tokens[:first], CMDS)
        # The relay bans command tokens for the teacher (they'd mean nothing in its span), so does this.
        expected = relay_ref.generate(teacher, [view], 3, eos_ids=(EOS,), banned_ids=(CALL, END))[0]
        assert span == expected[:len(span)]


def test_each_row_of_a_mixed_batch_equals_the_row_run_alone(random_pair):
    student, teacher = random_pair
    # Prompts ending in 0..7 call for 4 tokens; the others write 12 13 EOS.
    mixed = lookup_model({t: 12 for t in range(8, 60)} | {t: 10 for t in range(0, 8)} | chain(12, 13, EOS)
                         | chain(10, CALL, DIGIT[4], END))
    together = relay_generate(mixed, teacher, PROMPTS, commands=CMDS, max_new_tokens=30, eos_ids=(EOS,))
    assert 0 in together.calls and any(together.calls)  # a real mix: some rows call, some don't
    for r, prompt in enumerate(PROMPTS):
        alone = relay_generate(mixed, teacher, [prompt], commands=CMDS, max_new_tokens=30, eos_ids=(EOS,))
        assert alone.tokens[0] == together.tokens[r] and alone.authors[0] == together.authors[r]


def test_no_token_is_forwarded_twice_by_either_model(random_pair):
    _, teacher = random_pair
    out = relay_generate(calling_student(), teacher, PROMPTS, commands=CMDS, max_new_tokens=40, eos_ids=(EOS,))
    assert min(out.calls) >= 2
    student_views = sum(len(p) + len(t) for p, t in zip(PROMPTS, out.tokens))
    teacher_views = sum(len(p) + len(strip_commands(t, CMDS)) for p, t in zip(PROMPTS, out.tokens))
    assert out.forward_tokens["student"] <= student_views
    assert out.forward_tokens["teacher"] <= teacher_views


def test_the_budget_counts_every_response_token(random_pair):
    _, teacher = random_pair
    out = relay_generate(calling_student(), teacher, PROMPTS, commands=CMDS, max_new_tokens=6, eos_ids=(EOS,))
    assert all(len(t) <= 6 for t in out.tokens)
    assert all(any(m) for m in out.teacher_mask)


def test_command_ids_outside_the_embedding_are_refused(random_pair):
    student, teacher = random_pair
    with pytest.raises(ValueError, match="outside the student's 96 embedding rows"):
        relay_generate(student, teacher, [[1]], commands=CommandTokens(200, 201, tuple(DIGIT)),
                       max_new_tokens=4, eos_ids=())
