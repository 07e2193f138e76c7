"""The embedded toy world (issue #4): generator, tokenizer, committed data and the two committed models."""
import json
from pathlib import Path

import pytest
import torch

import relay_ref
from relay_ref.answers import is_correct
from scripts.make_toy_world import (ALPHABET, MODEL_VOCAB_SIZE, build_tokenizer, make_problem, make_split,
                                    solve)

ROOT = Path(__file__).resolve().parents[1]
DATA, WEIGHTS = ROOT / "data" / "toy", ROOT / "weights" / "toy"
MODELS = ["student", "teacher"]


def rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_generator_is_deterministic_for_a_seed():
    assert make_split(50, seed=3) == make_split(50, seed=3)
    assert make_split(50, seed=3) != make_split(50, seed=4)


def test_answers_and_every_step_are_correct_by_evaluating_the_expression():
    import random
    rng = random.Random(7)
    for _ in range(300):
        p = make_problem(rng)
        assert p["answer"] == str(eval(p["expression"]))  # the expressions are +, -, *, () on integers
        assert p["expression"] in p["problem"]
        steps = p["solution"].split("\n")
        for line in steps[:-1]:
            lhs, rhs = line.split("=")
            assert eval(lhs) == int(rhs) >= 0
        assert steps[-1] == f"So the answer is \\boxed{{{p['answer']}}}."
        assert is_correct(p["solution"], p["answer"])


def test_solve_follows_the_usual_order_one_operation_per_line():
    assert solve("(37+48)*6-125") == (["37+48=85", "85*6=510", "510-125=385"], 385)
    assert solve("12*3+45*2") == (["12*3=36", "45*2=90", "36+90=126"], 126)


def test_committed_data_is_what_the_generator_writes_and_test_is_not_in_train():
    test, train = rows("test.jsonl"), rows("train.jsonl")
    assert len(test) == 500 and len(train) >= 2000
    assert test == make_split(500, seed=0)
    assert not {p["expression"] for p in test} & {p["expression"] for p in train}
    assert not {p["problem"] for p in test} & {p["problem"] for p in train}
    assert len({p["expression"] for p in train}) == len(train)


def test_examples_stay_short(tok):
    for p in rows("test.jsonl"):
        response = len(tok.encode(p["solution"])) + 1  # + <|im_end|>
        assert 30 <= response <= 90
        assert len(tok.chat_prompt(p["problem"])) + response < 256


def test_tokenizer_round_trips_text_over_the_alphabet_one_token_per_character(tok):
    text = ALPHABET + "So the answer is \\boxed{385}."
    assert tok.encode(text) == [ALPHABET.index(c) if c in ALPHABET else None for c in text]
    assert tok.decode(tok.encode(text)) == text
    p = rows("test.jsonl")[0]
    prompt = tok.chat_prompt(p["problem"])
    full = tok.decode(prompt + tok.encode(p["solution"]) + [tok.eos_ids[0]])
    assert full == (f"<|im_start|>user\n{p['problem']}\nPlease reason step by step, and put your final answer "
                    f"within \\boxed{{}}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
                    f"{p['solution']}<|im_end|>")
    assert tok.encode(full) == prompt + tok.encode(p["solution"]) + [tok.eos_ids[0]]


def test_special_tokens_are_single_ids_in_qwen3_order_then_the_commands(tok):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<call>", "</call>"]
    ids = [tok.encode(s) for s in specials]
    assert ids == [[len(ALPHABET) + i] for i in range(len(specials))]
    assert len(tok) == len(ALPHABET) + len(specials) < MODEL_VOCAB_SIZE  # padding rows, as in Qwen3
    assert (tok.commands.call_id, tok.commands.end_id) == (ids[5][0], ids[6][0])
    assert tok.eos_ids == (ids[2][0], ids[0][0])
    assert tok.encode("<call>30</call>") == [tok.commands.call_id, tok.commands.digit_ids[3],
                                              tok.commands.digit_ids[0], tok.commands.end_id]


def test_digits_are_single_ids(tok):
    for d in range(10):
        assert tok.encode(str(d)) == [tok.commands.digit_ids[d]]
    assert tok.encode("1207") == [tok.commands.digit_ids[int(c)] for c in "1207"]


def test_a_character_outside_the_alphabet_is_an_error_not_silently_dropped(tok):
    with pytest.raises(Exception):
        tok.encode("é")


@pytest.mark.parametrize("name", MODELS)
def test_committed_models_load_with_the_toy_tokenizer(name, tok):
    model = relay_ref.load_model(WEIGHTS / name)
    loaded = relay_ref.load_tokenizer(WEIGHTS / name)
    assert model.dtype == torch.float32 and model.config.vocab_size == MODEL_VOCAB_SIZE
    assert loaded.tok.get_vocab() == tok.tok.get_vocab() and loaded.commands == tok.commands
    assert set(p.name for p in (WEIGHTS / name).iterdir()) >= {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}


@pytest.mark.parametrize("name", MODELS)
def test_transformers_loads_the_committed_models_with_the_same_logits(name, tok):
    transformers = pytest.importorskip("transformers")
    hf = transformers.Qwen3ForCausalLM.from_pretrained(WEIGHTS / name, dtype=torch.float32).eval()
    ours = relay_ref.load_model(WEIGHTS / name)
    p = rows("test.jsonl")[1]
    ids = torch.tensor([tok.chat_prompt(p["problem"]) + tok.encode(p["solution"]) + [tok.eos_ids[0]]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits.float(), atol=1e-4, rtol=0)


def test_the_confidence_caller_hands_over_exactly_where_the_student_is_unsure(tok):
    """scripts/eval_toy.py --confidence-caller: tau 0 never calls (the greedy student); tau > 1 calls
    wherever the student would write, so the teacher writes everything, n tokens per call. As in the relay
    (D3), the student's context holds each `<call>n</call>` and the teacher's does not."""
    from scripts.eval_toy import confidence_caller
    student, teacher = (relay_ref.load_model(WEIGHTS / n) for n in ("student", "teacher"))
    prompts = [tok.chat_prompt(p["problem"]) for p in rows("test.jsonl")[:4]]
    alone, calls, written = confidence_caller(student, teacher, tok, prompts, 0.0, 2, 40)
    assert calls == [0] * 4 and written == [0] * 4
    assert alone == relay_ref.generate(student, prompts, 40, eos_ids=tok.eos_ids)
    out, calls, written = confidence_caller(student, teacher, tok, prompts, 1.01, 2, 40, commands_in_context=False)
    assert out == relay_ref.generate(teacher, prompts, 40, eos_ids=tok.eos_ids)
    assert written == [len(r) for r in out] and calls == [-(-len(r) // 2) for r in out]

    seen = []
    def spy(ids):
        seen.append(ids)
        return student(ids)
    out, calls, written = confidence_caller(spy, teacher, tok, prompts[:2], 1.01, 2, 12)
    teacher_alone = relay_ref.generate(teacher, prompts[:2], 12, eos_ids=tok.eos_ids)
    assert all(t[:len(r)] == r and len(r) < len(t) for r, t in zip(out, teacher_alone))  # commands use the budget
    c = tok.commands
    second = seen[1][0].tolist()  # row 0 after one teacher token
    assert second[len(prompts[0]):len(prompts[0]) + 4] == [c.call_id, c.digit_ids[2], c.end_id, out[0][0]]


def test_pretraining_interruptions_are_read_but_never_predicted(tok):
    """pretrain_toy.py --command-spans: commands interrupt the response as inputs; the loss never asks the
    model to write one, and every other target is the next response token of the clean solution."""
    import random

    from scripts.pretrain_toy import chat_rows
    c = tok.commands
    command_ids = {c.call_id, c.end_id, *c.digit_ids}
    problems = [make_problem(random.Random(s)) for s in range(40)]
    clean = chat_rows(tok, problems)
    noisy = chat_rows(tok, problems, command_spans=3, rng=random.Random(0))
    assert sum(c.call_id in ids for ids, _ in noisy) > 20
    for (ids, labels), (clean_ids, clean_labels) in zip(noisy, clean):
        assert labels.count(-100) >= clean_labels.count(-100)
        assert [t for t in labels if t != -100] == [t for t in clean_labels if t != -100]
        for t, target in enumerate(labels):
            if target != -100:
                assert target == ids[t + 1]
            if t + 1 < len(ids) and ids[t + 1] == c.call_id:
                assert target == -100
        calls = [i for i, t in enumerate(ids) if t == c.call_id]
        for i in calls:  # a whole `<call>n</call>` is unlabelled, and the token after it is labelled
            end = ids.index(c.end_id, i)
            assert all(ids[j] in command_ids for j in range(i, end + 1))
            assert labels[i - 1:end] == [-100] * (end - i + 1) and labels[end] == ids[end + 1]
    assert chat_rows(tok, problems) == clean  # no spans asked: the plain rows (the teacher's)
