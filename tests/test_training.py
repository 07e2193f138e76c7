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
from relay_ref.sft import collate, make_warmup_examples, step_with_command_rows, train_sft
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


CFG = dict(steps=2, prompts_per_step=2, group_size=4, lr=1e-2, max_new_tokens=12, rollout_batch=8,
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
