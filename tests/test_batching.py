"""Continuous batching and batch-invariant sampling (issue #18), and the samplers' argument checks.

A *bigram model* is a real Qwen3ForCausalLM whose logits are an exact function of the current token:
attention and MLP are zeroed, the embedding is one-hot, and lm_head column `cur` holds `table[cur]`. Its
logits do not depend on the batch at all, so any difference between two runs comes from the sampler. At
temperature 1 it samples: a row's response is then a test of where its random draws come from.
"""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

import relay_ref.evaluation as evaluation
from relay_ref.commands import TEACHER, CommandTokens
from relay_ref.evaluation import evaluate
from relay_ref.generate import generate
from relay_ref.model import Qwen3ForCausalLM
from relay_ref.relay import relay_generate
from relay_ref.sampling import M32, exp_noise, mix, row_key, sample, uniform
from relay_ref.sft import make_warmup_examples
from test_relay import one_hot_model

V = 96
CALL, END, EOS = 60, 61, 62
DIGIT = list(range(70, 80))
CMDS = CommandTokens(CALL, END, tuple(DIGIT))
TEXT_IDS = list(range(10, 30))


def bigram_model(table: torch.Tensor) -> Qwen3ForCausalLM:
    """table [V, V]: logits of the next token given the current one (exact up to one float rounding)."""
    model = one_hot_model()
    with torch.no_grad():
        gain = (1 / V + model.config.rms_norm_eps) ** -0.5  # what the final RMSNorm makes of a one-hot row
        model.lm_head.weight.copy_(table.t() / gain)
    return model


def table_from(rows: dict[int, dict[int, float]], default: dict[int, float]) -> torch.Tensor:
    """Logits per current token: -inf except the listed next tokens (rows[cur], else default)."""
    t = torch.full((V, V), -1e4)
    for cur in range(V):
        for nxt, logit in rows.get(cur, default).items():
            t[cur, nxt] = logit
    return t


def lookup(chain: dict[int, int], other: int = EOS) -> Qwen3ForCausalLM:
    """Writes chain[cur] after cur (other after anything else), with certainty even at temperature 1."""
    return bigram_model(table_from({c: {n: 50.0} for c, n in chain.items()}, {other: 50.0}))


# A student that writes text, sometimes a command (well formed, void, n = 0, unclosed) and sometimes EOS;
# a teacher that writes text and sometimes EOS. Both sample at temperature 1.
text_next = {t: 0.0 for t in TEXT_IDS} | {CALL: 1.0, EOS: 0.3, END: -1.0}
digit_next = {d: 0.0 for d in DIGIT[:4]} | {END: 0.5, 15: -1.0}
STUDENT = bigram_model(table_from({CALL: {d: 0.0 for d in DIGIT[:4]} | {END: -1.0, 12: -2.0},
                                   **{d: digit_next for d in DIGIT}}, text_next))
TEACHER_MODEL = bigram_model(table_from({}, {t: 0.0 for t in TEXT_IDS} | {EOS: 1.0}))

prompt_lists = st.lists(st.lists(st.sampled_from(TEXT_IDS), min_size=1, max_size=6), min_size=1, max_size=7)


def relay(prompts, **kw):
    kw = dict(commands=CMDS, max_new_tokens=24, eos_ids=(EOS,), temperature=1.0, seed=3) | kw
    return relay_generate(STUDENT, TEACHER_MODEL, prompts, **kw)


@settings(max_examples=25, deadline=None)
@given(prompts=prompt_lists, data=st.data())
def test_the_same_prompts_and_seed_give_the_same_responses_whatever_the_number_of_slots(prompts, data):
    slots = data.draw(st.integers(1, len(prompts)))
    budget = data.draw(st.integers(1, 24))
    seed = data.draw(st.integers(0, 2 ** 40))
    random_calls = data.draw(st.sampled_from([None, (0.2, 2)]))
    everything = relay(prompts, max_new_tokens=budget, seed=seed, random_calls=random_calls)
    scheduled = relay(prompts, max_new_tokens=budget, seed=seed, random_calls=random_calls, slots=slots)
    assert scheduled.tokens == everything.tokens and scheduled.authors == everything.authors
    assert scheduled.calls == everything.calls


def test_the_bigram_pair_really_exercises_calls_void_commands_teacher_eos_and_budget_ends():
    out = relay([[10 + i % 5] for i in range(40)], slots=3)
    lengths = [len(t) for t in out.tokens]
    assert any(out.calls) and 0 in out.calls and min(lengths) < 24 and max(lengths) == 24
    assert any(t[-1] == EOS and a[-1] == TEACHER for t, a in zip(out.tokens, out.authors))  # a teacher EOS
    assert any(CALL in t and c == 0 for t, c in zip(out.tokens, out.calls))  # a void command
    assert len({tuple(t) for t in out.tokens}) > 30  # 8 rows of the same prompt: different samples


@settings(max_examples=15, deadline=None)
@given(prompts=prompt_lists, data=st.data())
def test_a_rows_response_does_not_depend_on_the_other_prompts(prompts, data):
    j = data.draw(st.integers(0, len(prompts) - 1))
    others = [p if i == j else data.draw(st.lists(st.sampled_from(TEXT_IDS), min_size=1, max_size=6))
              for i, p in enumerate(prompts)]
    slots = data.draw(st.integers(1, len(prompts)))
    assert relay(prompts).tokens[j] == relay(others, slots=slots).tokens[j]


@settings(max_examples=15, deadline=None)
@given(prompts=prompt_lists, data=st.data())
def test_plain_generation_is_batch_invariant_too(prompts, data):
    slots = data.draw(st.integers(1, len(prompts)))
    kw = dict(temperature=1.0, eos_ids=(EOS,), seed=5)
    assert generate(STUDENT, prompts, 20, slots=slots, **kw) == generate(STUDENT, prompts, 20, **kw)


def test_rows_with_the_same_prompt_get_different_samples_and_seeds_change_them():
    same = generate(STUDENT, [[10]] * 8, 16, temperature=1.0, seed=0)
    assert len({tuple(r) for r in same}) == 8
    assert generate(STUDENT, [[10]] * 8, 16, temperature=1.0, seed=1) != same


def test_student_and_teacher_draws_are_independent_streams():
    """Same logits, same seed, same row and position: a salt apart, the two draws agree only by chance."""
    keys = torch.arange(20000)
    student = exp_noise(row_key(7, 0, keys), torch.full_like(keys, 4), 4)
    teacher = exp_noise(row_key(7, 1, keys), torch.full_like(keys, 4), 4)
    assert abs(torch.corrcoef(torch.stack([student.flatten(), teacher.flatten()]))[0, 1]) < 0.02
    logits = torch.zeros(20000, 4)
    t = torch.ones(20000)
    agree = (sample(logits, t, student) == sample(logits, t, teacher)).float().mean()
    assert abs(agree - 0.25) < 0.02  # independent uniform draws over 4 tokens agree a quarter of the time


def test_the_noise_is_exp1_by_a_kolmogorov_smirnov_bound_and_its_moments():
    n = 100_000
    keys = row_key(11, 0, torch.arange(n // 10)).repeat_interleave(10)
    e = exp_noise(keys, torch.arange(n) % 10, 1).flatten().double()  # 10,000 rows x 10 positions
    assert abs(e.mean() - 1) < 5 / math.sqrt(n) and abs(e.var() - 1) < 5 * math.sqrt(8 / n)
    x, _ = e.sort()
    cdf = 1 - torch.exp(-x)
    ks = torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max()
    assert ks < 0.00704  # the KS critical value at alpha 1e-4 for n = 100,000
    nearby = exp_noise(keys, torch.arange(n) % 10, 2)  # neighbouring vocabulary ids are independent too
    assert abs(torch.corrcoef(nearby.t())[0, 1]) < 0.02


def test_sampling_at_temperature_one_matches_the_softmax_frequencies_by_a_chi_square_bound():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -3.0])
    n = 40_000
    rows = torch.arange(n)
    drawn = sample(logits.expand(n, 8), torch.ones(n), exp_noise(row_key(0, 0, rows // 4), rows % 4, 8))
    observed = torch.bincount(drawn, minlength=8).double()
    expected = n * torch.softmax(logits.double(), 0)
    assert ((observed - expected) ** 2 / expected).sum() < 29.88  # chi-square, 7 dof, alpha 1e-4


def test_the_hash_is_exact_integer_arithmetic_the_same_on_tensors_and_python_ints():
    """Every product stays below 2^63, so int64 on any device computes what Python's big ints compute."""
    xs = [0, 1, 2 ** 31 - 1, 2 ** 31, M32 - 1, M32, 123456789, 3 ** 20 & M32]
    assert mix(torch.tensor(xs)).tolist() == [mix(x) for x in xs]
    seeds, rows, pos = [0, 2 ** 40 + 5, 7], [0, 255, 2 ** 20], [0, 1, 40959]
    for s in seeds:
        assert row_key(s, 1, torch.tensor(rows)).tolist() == [row_key(s, 1, r) for r in rows]
        keys = row_key(s, 1, torch.tensor(rows))
        assert [uniform(k, p) for k, p in zip(keys.tolist(), pos)] == uniform(keys, torch.tensor(pos)).tolist()


def test_greedy_stays_argmax():
    logits = torch.randn(5, 30)
    assert torch.equal(sample(logits, torch.zeros(5), exp_noise(torch.arange(5), torch.arange(5), 30)),
                       logits.argmax(-1))


# --- argument checks (issue #15 item 7) --------------------------------------------------------------

def test_a_zero_budget_gives_empty_responses():
    out = relay([[10], [11, 12]], max_new_tokens=0)
    assert out.tokens == [[], []] and out.calls == [0, 0] and out.forward_tokens == {"student": 0, "teacher": 0}
    assert generate(STUDENT, [[10], [11]], 0) == [[], []]


@pytest.mark.parametrize("kw, message", [
    (dict(max_new_tokens=-1), "budget max_new_tokens=-1 is negative"),
    (dict(slots=0), "slots=0: choose 1 to 2"),
    (dict(slots=3), "slots=3: choose 1 to 2"),
    (dict(random_calls=(0.5, 0)), "random_calls k=0"),
    (dict(random_calls=(1.5, 2)), "q=1.5 is not a probability"),
    (dict(fixed_call_tokens=0), "fixed_call_tokens=0"),
    (dict(max_call_tokens=0), "max_call_tokens=0"),
])
def test_bad_arguments_are_refused_with_a_clear_message(kw, message):
    with pytest.raises(ValueError, match=message):
        relay([[10], [11]], **kw)


def test_a_prompt_id_outside_the_vocabulary_names_the_row_position_and_id():
    with pytest.raises(ValueError, match="prompt 1, position 2: token id 96 is outside the student's 96"):
        relay([[10], [11, 12, V]])
    with pytest.raises(ValueError, match="prompt 0, position 0: token id -1"):
        generate(STUDENT, [[-1]], 4)


def test_a_prompt_longer_than_the_context_is_refused():
    small = bigram_model(table_from({}, {EOS: 0.0}))
    small.config.max_position_embeddings = 8
    with pytest.raises(ValueError, match="prompt 0 has 9 tokens: the model's context is 8"):
        generate(small, [[10] * 9], 4)


def test_max_calls_caps_random_calls_too():
    student, teacher = lookup({}, other=11), lookup({}, other=20)  # writes 11 forever; writes 20 forever
    for max_calls, calls in [(None, 8), (1, 1)]:
        out = relay_generate(student, teacher, [[10]] * 2, commands=CMDS, max_new_tokens=24, eos_ids=(EOS,),
                             random_calls=(1.0, 2), max_calls=max_calls)
        assert out.calls == [calls] * 2  # every student token calls: 11 20 20, 11 20 20, ...


# --- the callers (issue #15 items 11 and 12) ---------------------------------------------------------

class SmallTokenizer:
    """A tokenizer of 80 ids: the models' rows 80..95 are padding it never produces."""
    commands, eos_ids = CMDS, (EOS,)

    def __len__(self):
        return 80

    def chat_prompt(self, question):
        return [1, 2]

    def decode(self, ids):
        return " ".join(map(str, ids))


# After the prompt, a model that prefers the command token, then a padding row, then text 12, then EOS.
tempted = table_from({2: {CALL: 9.0, 90: 8.0, 12: 7.0}, 12: {EOS: 50.0}}, {EOS: 50.0})


@pytest.mark.parametrize("mode", ["student", "teacher"])
def test_the_baselines_alone_never_write_command_tokens_or_padding_rows(mode):
    model = bigram_model(tempted)
    r = evaluate(mode, model, model, SmallTokenizer(), [{"problem": "q", "answer": "12"}], max_new_tokens=4)
    assert r["records"][0]["token_ids"] == [12, EOS]


def test_warmup_responses_never_contain_sampled_command_tokens_or_padding_rows():
    examples = make_warmup_examples(bigram_model(tempted), SmallTokenizer(), [{"problem": "q"}] * 6,
                                    max_new_tokens=4, max_commands=0, temperature=1.0)
    assert all(e["response_ids"] == [12, EOS] for e in examples)


def test_the_teacher_is_greedy_in_evaluation_unless_told_otherwise(monkeypatch):
    """D4: at temperature 1 (avg@k) the relay student samples, the teacher still writes its argmax."""
    student = lookup({2: CALL, CALL: DIGIT[3], DIGIT[3]: END})  # then EOS after the teacher's tokens
    teacher = bigram_model(table_from({}, {20: 0.0, 21: -0.1}))  # a near tie: sampling would write 21s
    q = [{"problem": "q", "answer": "x"}]
    for teacher_temperature, spans in [(0.0, {(20, 20, 20)}), (1.0, None)]:
        r = evaluate("relay", student, teacher, SmallTokenizer(), q, samples=8, temperature=1.0, max_new_tokens=12,
                     teacher_temperature=teacher_temperature)
        seen = {tuple(t for t, a in zip(rec["token_ids"], rec["authors"]) if a == TEACHER) for rec in r["records"]}
        assert seen == spans if spans else len(seen) > 1


def test_d12_filtering_bans_the_command_tokens_and_limits_the_teacher_to_the_tokenizer(monkeypatch, tmp_path):
    import scripts.filter_data as filter_data
    seen = {}

    def fake_generate(model, prompts, max_new_tokens, **kw):
        seen.update(kw)
        return [[EOS] for _ in prompts]
    monkeypatch.setattr(filter_data, "generate", fake_generate)
    monkeypatch.setattr("sys.argv", ["filter_data.py", "data/toy/train.jsonl", str(tmp_path / "out.jsonl"),
                                     "--limit", "3", "--samples", "2"])
    filter_data.main()
    tok = filter_data.load_tokenizer(filter_data.ROOT / "weights/toy/teacher")
    assert set(seen["banned_ids"]) == {tok.commands.call_id, tok.commands.end_id}
    assert seen["vocab_limit"] == len(tok) and seen["slots"] == 6


def test_on_done_is_called_once_per_row_as_it_finishes():
    """Progress bars ride on `on_done`: one call per row, whatever the slots, in both samplers."""
    student, teacher = bigram_model(torch.randn(V, V)), bigram_model(torch.randn(V, V))
    prompts = [[1, 2], [3], [4, 5, 6], [7], [8, 9]]
    for slots in (1, 2, 5):
        done = []
        generate(student, prompts, 6, temperature=1.0, seed=0, slots=slots, on_done=done.append)
        assert done == [1] * len(prompts)
        done = []
        relay_generate(student, teacher, prompts, commands=CMDS, max_new_tokens=6, eos_ids=(EOS,), temperature=1.0,
                       seed=0, slots=slots, on_done=done.append)
        assert done == [1] * len(prompts)
