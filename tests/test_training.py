"""Warm-up SFT and GRPO end to end on tiny models: the plumbing, checkpoints, resume, and failure modes.

These are smoke tests of the loops (the maths of the loss, advantages and rewards have their own
property tests). The judge is replaced by a deterministic stand-in so that rewards vary within groups
even though random tiny models never solve anything.
"""
import json

import pytest
import torch
from test_tokenizer import qwen_like_tokenizer

import relay_ref.grpo as grpo_module
from relay_ref.commands import CommandTokens
from relay_ref.checkpoint import load_model
from relay_ref.data import insert_commands
from relay_ref.grpo import GRPOConfig, NonFiniteLoss, train_grpo
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.sft import (collate, make_warmup_examples, step_with_command_rows, train_sft,
                           unsure_boundaries)
from relay_ref.tokenizer import Tokenizer

QUESTIONS = [{"problem": f"{a}+{b}", "answer": str(a + b)} for a in range(4) for b in range(3)]
FIELDS = {"step", "reward", "accuracy", "call_ratio", "kl", "loss", "clip_frac", "grad_norm", "frac_zero_std",
          "calls_per_response", "response_tokens", "no_call_share", "no_call_accuracy", "seconds"}


def tiny(seed, tok, layers=1):
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(tok) + 8, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    return Qwen3ForCausalLM(cfg).eval()


@pytest.fixture
def world(monkeypatch):
    tok = Tokenizer(qwen_like_tokenizer())
    # Stand-in judge: "correct" when the response has an even number of characters.
    monkeypatch.setattr(grpo_module, "is_correct", lambda text, gold: len(text) % 2 == 0)
    return tok, tiny(0, tok), tiny(1, tok, layers=2)


CFG = dict(steps=2, prompts_per_step=2, group_size=4, lr=1e-2, max_new_tokens=12, rollout_slots=8,
           micro_batch=3, save_every=1, seed=3)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def test_warmup_sft_then_two_grpo_steps_train_checkpoint_and_log(world, tmp_path):
    tok, student, teacher = world
    examples = make_warmup_examples(student, tok, QUESTIONS[:6], max_new_tokens=10, seed=0)
    assert any(tok.commands.call_id in e["response_ids"] for e in examples)
    before = params(student)
    losses = train_sft(student, examples, epochs=1, batch_size=3, lr=1e-2)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(before, params(student))

    ref = tiny(0, tok)
    ref.load_state_dict(student.state_dict())
    before = params(student)
    train_grpo(student, ref, teacher, tok, QUESTIONS, GRPOConfig(**CFG), tmp_path)
    assert not torch.equal(before, params(student))  # parameters moved
    reloaded = load_model(tmp_path / "checkpoint")
    assert torch.equal(params(reloaded), params(student))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [0, 1]
    for line in lines:
        assert FIELDS <= set(line) and all(v == v for v in line.values())  # no NaN


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(world, tmp_path):
    tok, student, teacher = world
    ref = tiny(0, tok)
    full = train_grpo(tiny(0, tok), ref, teacher, tok, QUESTIONS, GRPOConfig(**{**CFG, "steps": 4}), tmp_path / "a")
    train_grpo(tiny(0, tok), ref, teacher, tok, QUESTIONS, GRPOConfig(**{**CFG, "steps": 2}), tmp_path / "b")
    resumed = train_grpo(tiny(0, tok), ref, teacher, tok, QUESTIONS, GRPOConfig(**{**CFG, "steps": 4}),
                         tmp_path / "b", resume=True)
    assert torch.equal(params(full), params(resumed))
    logs = [(tmp_path / d / "metrics.jsonl").read_text() for d in "ab"]
    assert [json.loads(l)["reward"] for l in logs[0].splitlines()] == \
        [json.loads(l)["reward"] for l in logs[1].splitlines()]


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(world, tmp_path, monkeypatch):
    tok, student, teacher = world
    ref = tiny(0, tok)
    train_grpo(student, ref, teacher, tok, QUESTIONS, GRPOConfig(**{**CFG, "steps": 1}), tmp_path)
    saved = params(load_model(tmp_path / "checkpoint"))
    real = grpo_module.grpo_loss
    monkeypatch.setattr(grpo_module, "grpo_loss", lambda *a, **k: (real(*a, **k)[0] * float("nan"), real(*a, **k)[1]))
    with pytest.raises(NonFiniteLoss, match="step 1: the GRPO loss is nan.*checkpoint .* is intact"):
        train_grpo(student, ref, teacher, tok, QUESTIONS, GRPOConfig(**{**CFG, "steps": 3}), tmp_path, resume=True)
    assert torch.equal(params(load_model(tmp_path / "checkpoint")), saved)


@pytest.mark.parametrize("bad, message", [({"reward": "simpel"}, "reward 'simpel'"),
                                          ({"advantage_scale": "batch"}, "advantage_scale 'batch'"),
                                          ({"group_size": 1}, "G >= 2")])
def test_a_bad_grpo_setting_is_refused_when_the_config_is_made(bad, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**bad)


def test_collate_masks_response_tokens_only_and_finds_padding_by_length():
    ids, mask = collate([[1, 2, 3], [4]], [[5, 6], [7, 8, 9]], [[True, False], [True, True, True]])
    assert ids.tolist() == [[1, 2, 3, 5, 6], [4, 7, 8, 9, 0]]
    # position t predicts ids[t + 1]: row 0 predicts 5 (trained) and 6 (masked, e.g. a teacher token)
    assert mask.tolist() == [[False, False, True, False], [True, True, True, False]]


def test_the_warmup_commands_parse_with_the_relay_parser():
    from relay_ref.commands import requested_calls
    import random
    tok = Tokenizer(qwen_like_tokenizer())
    response = tok.encode("12+34=46 so the answer is 46")
    for seed in range(30):
        with_commands = insert_commands(response, tok.commands, random.Random(seed))
        n_inserted = with_commands.count(tok.commands.call_id)
        assert len(requested_calls(with_commands, [False] * len(with_commands), tok.commands)) == n_inserted


def test_rollout_rewards_a_correct_answer_with_a_call_inside_the_box(monkeypatch):
    """The reward reads the answer without command tokens (D13 on D3's view): `\\box<call>8</call>ed{42}`."""
    from relay_ref.commands import COMMAND, TEACHER, TEXT
    from relay_ref.relay import RelayOutput
    from relay_ref.tokenizer import load_tokenizer
    tok = load_tokenizer("weights/toy/student")
    c = tok.commands
    student, call, teacher = tok.encode("So \\box"), [c.call_id, c.digit_ids[8], c.end_id], tok.encode("ed{42}")
    called = student + call + teacher
    wrong = tok.encode("So \\boxed{41}")
    rows = [called, wrong]
    authors = [[TEXT] * len(student) + [COMMAND] * 3 + [TEACHER] * len(teacher), [TEXT] * len(wrong)]
    monkeypatch.setattr(grpo_module, "relay_generate", lambda *a, **kw: RelayOutput(rows, authors, [1, 0], {}))
    batch = grpo_module.rollout(None, None, tok, [{"problem": "6*7", "answer": "42"}],
                                GRPOConfig(group_size=2, max_new_tokens=32), step=0)
    assert batch["metrics"]["accuracy"] == 0.5
    assert batch["metrics"]["no_call_share"] == 0.5 and batch["metrics"]["no_call_accuracy"] == 0.0
    assert batch["advantages"][0] > 0 > batch["advantages"][1]  # teacher-dependent: 1 - rho against -1


@pytest.mark.parametrize("tied", [False, True])
def test_command_rows_move_scale_times_as_far_and_nothing_else_changes(tied):
    """The new tokens' rows (D1) get a `scale`-times step; every other weight takes the plain AdamW step."""
    def one_step(scale):
        torch.manual_seed(0)
        cfg = Qwen3Config(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=tied)
        model = Qwen3ForCausalLM(cfg)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        model(torch.tensor([[1, 5, 7, 30, 31, 2]])).logsumexp(-1).mean().backward()
        step_with_command_rows(opt, model, CommandTokens(30, 31, tuple(range(10))), scale)
        return {k: v - before[k] for k, v in model.state_dict().items()}

    plain, boosted = one_step(1.0), one_step(5.0)
    rows = torch.tensor([30, 31])
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        assert plain[key][rows].abs().sum() > 0
        torch.testing.assert_close(boosted[key][rows], 5 * plain[key][rows])
        others = torch.ones(40, dtype=torch.bool)
        others[rows] = False
        torch.testing.assert_close(boosted[key][others], plain[key][others], rtol=0, atol=0)
    for key in plain:
        if key not in ("model.embed_tokens.weight", "lm_head.weight"):
            torch.testing.assert_close(boosted[key], plain[key], rtol=0, atol=0)


def test_unsure_boundaries_are_the_tokens_the_model_gave_under_the_threshold(world):
    """Boundary t is allowed when the model's top-1 probability for response[t], given all before it, is < P."""
    tok, student, _ = world
    prompt, response = tok.chat_prompt("2+3"), tok.encode("2+3=5 so \\boxed{5}")
    with torch.no_grad():
        probs = torch.softmax(student(torch.tensor([prompt + response]))[0], dim=-1)
    top1 = [probs[len(prompt) - 1 + t].max().item() for t in range(len(response))]
    threshold = sorted(top1)[len(top1) // 2]
    assert unsure_boundaries(student, [prompt], [response], threshold) == [[t for t, p in enumerate(top1)
                                                                             if p < threshold]]
    assert unsure_boundaries(student, [prompt], [response], 0.0) == [[]]
    assert unsure_boundaries(student, [prompt], [response], 1.01) == [list(range(len(response)))]


def test_warmup_commands_land_only_where_the_student_was_unsure(world, monkeypatch):
    tok, student, _ = world
    c = tok.commands
    # Fixed "samples" with no command tokens in them, so every command found was inserted.
    texts = ["1+2=3 so \\boxed{3}", "3+2=5 so \\boxed{5}", "2+0=2 so \\boxed{2}"] * 4
    monkeypatch.setattr("relay_ref.sft.generate", lambda model, prompts, *a, **kw: [tok.encode(texts[i])
                                                                                   for i in range(len(prompts))])
    threshold = 0.016  # about the median top-1 probability of this random model: half the boundaries qualify
    placed, allowed_total, boundaries_total = 0, 0, 0
    for q, e in zip(QUESTIONS, make_warmup_examples(student, tok, QUESTIONS, seed=0, unsure_below=threshold)):
        ids, response, boundaries, i = e["response_ids"], [], [], 0
        while i < len(ids):  # undo the insertion: the response, and the boundary of every command
            if ids[i] == c.call_id:
                boundaries.append(len(response))
                i = ids.index(c.end_id, i)
            else:
                response.append(ids[i])
            i += 1
        allowed = set(unsure_boundaries(student, [e["prompt_ids"]], [response], threshold)[0])
        assert set(boundaries) <= allowed
        placed, allowed_total, boundaries_total = placed + len(boundaries), allowed_total + len(allowed), \
            boundaries_total + len(response)
    assert placed > 0 and 0 < allowed_total < boundaries_total * 0.8, "the threshold leaves a real choice"
    assert all(c.call_id not in e["response_ids"]
               for e in make_warmup_examples(student, tok, QUESTIONS, seed=0, unsure_below=0.0))


def test_commands_only_warmup_moves_the_command_rows_and_nothing_else(world):
    tok, student, _ = world
    examples = make_warmup_examples(student, tok, QUESTIONS, max_new_tokens=10, seed=0)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    train_sft(student, examples, epochs=1, batch_size=4, lr=1e-2, commands=tok.commands, command_lr_scale=10,
              commands_only=True)
    rows = torch.tensor([tok.commands.call_id, tok.commands.end_id])
    for key, value in student.state_dict().items():
        changed = (value != before[key]).reshape(value.shape[0], -1).any(dim=-1) if value.dim() else value != before[key]
        if key in ("model.embed_tokens.weight", "lm_head.weight"):
            assert changed[rows].all() and changed.sum() == len(rows), key
        else:
            assert not changed.any(), f"{key} moved in a commands-only warm-up"
    assert all(p.requires_grad for p in student.parameters()), "GRPO trains the whole student afterwards"
    with pytest.raises(ValueError, match="weight_decay=0"):
        train_sft(student, examples, commands=tok.commands, commands_only=True, weight_decay=0.01)


def test_commands_only_warmup_unfreezes_the_student_after_a_non_finite_loss(world, monkeypatch):
    tok, student, _ = world
    examples = make_warmup_examples(student, tok, QUESTIONS[:4], max_new_tokens=6, seed=0)
    monkeypatch.setattr("relay_ref.sft.sft_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="step 0"):
        train_sft(student, examples, commands=tok.commands, commands_only=True)
    assert all(p.requires_grad for p in student.parameters())


def test_warmup_micro_batches_leave_the_step_the_batch_token_mean(world):
    """Rows of unequal length: one row at a time gives the same update and loss as the whole batch at once."""
    tok, student, _ = world
    examples = make_warmup_examples(student, tok, QUESTIONS, max_new_tokens=10, seed=0)
    assert len({len(e["response_ids"]) for e in examples[:4]}) > 1
    runs = []
    for micro in (None, 1):
        model = tiny(0, tok)
        losses = train_sft(model, examples[:4], epochs=1, batch_size=4, lr=1e-2, micro_batch=micro)
        runs.append((losses, params(model)))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    moved = (runs[0][1] - params(tiny(0, tok))).abs()
    # Adam divides by |g|: a float-rounding difference in a gradient near 0 may move its weight, so compare the rest
    assert torch.allclose(runs[0][1], runs[1][1], atol=1e-6) or ((runs[0][1] - runs[1][1]).abs() > 1e-6).float().mean() < 1e-3
    assert moved.max() > 1e-3
