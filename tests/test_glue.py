"""The training loop's glue, tested through the real functions: `rollout()` -> `update()` -> `grpo_loss`.

`grpo_loss`, the rewards and the parser have their own tests; these pin how they are wired together:
- the first `update()` after a rollout is on-policy: importance ratio exactly 1, so the loss is
  -sum_i A_i * m_i / M, no token is clipped, at any rollout temperature (docs/design.md §GRPO (a));
- its KL is measured against the reference model: > 0 when the reference differs, 0 when it is the policy;
- the token-mean divides by the optimizer batch's M, so micro-batching does not change the gradient (D9);
- `rollout()` builds the masks with `train_on_teacher_tokens` (D8).
The models are tiny random Qwen3s; the judge is a deterministic stand-in, so rewards vary within a group.
"""
import copy

import pytest
import torch

import relay_ref.grpo as grpo_module
from relay_ref.commands import COMMAND, TEACHER, TEXT
from relay_ref.grpo import GRPOConfig, rollout, update
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.relay import RelayOutput
from relay_ref.tokenizer import load_tokenizer

TOK = load_tokenizer("weights/toy/student")
QUESTIONS = [{"problem": f"{a}*{b}", "answer": str(a * b)} for a, b in [(2, 3), (4, 5), (6, 7)]]


def tiny(seed, layers=1):
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(TOK) + 5, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():  # logits far from flat, so a wrong temperature or model shows in the numbers
        model.lm_head.weight.mul_(20.0)
    return model


class RecordingSGD(torch.optim.SGD):
    """lr 0: the weights stay put, and every optimizer step records the gradient it was handed."""

    def __init__(self, params):
        self.params_list = list(params)
        super().__init__(self.params_list, lr=0.0)
        self.grads = []

    def step(self, closure=None):
        self.grads.append(torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                                     for p in self.params_list]).clone())
        return super().step(closure)


@pytest.fixture
def judged(monkeypatch):
    # Stand-in judge: "correct" when the response has an even number of characters.
    monkeypatch.setattr(grpo_module, "is_correct", lambda text, gold: len(text) % 2 == 0)


def cfg(**kw):
    base = dict(group_size=4, max_new_tokens=10, rollout_slots=12, micro_batch=12, grad_clip=1e9, beta=0.1,
                lr=0.0, seed=1)
    return GRPOConfig(**{**base, **kw})


def a_rollout(policy, temperature, seed=1, **kw):
    batch = rollout(policy, tiny(7, layers=2), TOK, QUESTIONS, cfg(temperature=temperature, seed=seed, **kw),
                    step=0)
    assert batch["advantages"].abs().sum() > 0, "the stand-in judge must give some non-zero advantages"
    return batch


def on_policy_loss(batch):
    """With ratio 1 and no KL, Eq. 1's token-mean is -sum_i A_i * (masked tokens of row i) / M."""
    counts = torch.tensor([sum(m) for m in batch["masks"]], dtype=torch.float64)
    return float(-(batch["advantages"].double() * counts).sum() / counts.sum())


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_the_first_update_after_a_rollout_has_ratio_one_and_clips_nothing(judged, temperature):
    policy = tiny(0)
    batch = a_rollout(policy, temperature)
    stats = update(policy, copy.deepcopy(policy), RecordingSGD(policy.parameters()), batch,
                   cfg(temperature=temperature, micro_batch=5))
    assert stats["clip_frac"] == 0.0
    assert stats["kl"] == pytest.approx(0.0, abs=1e-7)  # the reference is the policy
    # ratio 1 on every token: the loss is the advantage-weighted token share, nothing else
    assert stats["loss"] == pytest.approx(on_policy_loss(batch), rel=1e-5, abs=1e-7)


def test_the_kl_is_measured_against_the_reference_model(judged):
    policy = tiny(0)
    batch = a_rollout(policy, 0.6)
    reference = tiny(3)  # a different model: the k3 KL of the policy's tokens is clearly positive
    stats = update(policy, reference, RecordingSGD(policy.parameters()), batch, cfg(temperature=0.6))
    assert stats["kl"] > 1e-3
    assert stats["clip_frac"] == 0.0  # the ratio is to the old policy, not to the reference


def test_micro_batching_does_not_change_the_gradient(judged):
    """Rows with unequal masked-token counts: the token-mean divides by the whole batch's M (D9)."""
    policy = tiny(0)
    batch = a_rollout(policy, 1.0, train_on_teacher_tokens=False)
    counts = [sum(m) for m in batch["masks"]]
    assert len(set(counts)) > 1, "the rows must differ in their masked-token counts"
    grads, stats = {}, {}
    for micro in (1, 5, len(counts)):
        opt = RecordingSGD(policy.parameters())
        stats[micro] = update(policy, tiny(3), opt, batch, cfg(temperature=1.0, micro_batch=micro, updates_per_step=1))
        assert len(opt.grads) == 1  # one optimizer step per rollout batch
        grads[micro] = opt.grads[0]
    assert grads[1].abs().sum() > 0 and stats[1]["kl"] > 1e-3
    for micro in (5, len(counts)):
        torch.testing.assert_close(grads[micro], grads[1], rtol=1e-4, atol=1e-6)
        for key in ("loss", "kl", "clip_frac"):  # the logged statistics are token-means over the batch too
            assert stats[micro][key] == pytest.approx(stats[1][key], rel=1e-4, abs=1e-7), key


def test_each_of_several_updates_is_the_token_mean_over_its_own_rows(judged):
    """updates_per_step = 2 on 4 micro-batches of 3: each step's gradient is the one update() gives on its
    six rows alone (lr 0, so the policy is the same at both steps)."""
    policy = tiny(0)
    batch = a_rollout(policy, 1.0)
    opt = RecordingSGD(policy.parameters())
    update(policy, tiny(3), opt, batch, cfg(temperature=1.0, micro_batch=3, updates_per_step=2))
    assert len(opt.grads) == 2
    for k, rows in enumerate((slice(0, 6), slice(6, 12))):
        half = {"prompts": batch["prompts"][rows], "tokens": batch["tokens"][rows], "masks": batch["masks"][rows],
                "advantages": batch["advantages"][rows]}
        alone = RecordingSGD(policy.parameters())
        update(policy, tiny(3), alone, half, cfg(temperature=1.0, micro_batch=6))
        torch.testing.assert_close(opt.grads[k], alone.grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("updates", [1, 2])
def test_old_log_probs_come_from_the_policy_before_any_update_at_the_rollout_temperature(judged, monkeypatch, updates):
    """One update per step: the policy has not moved, so the training forward's own log-probs (detached) are
    the old ones, and no extra pass is made. Several: one no-grad pass of the policy before the first update,
    at the rollout temperature, whose tensors every later update uses, while the policy moves (lr > 0)."""
    policy, reference = tiny(0), tiny(3)
    batch = a_rollout(policy, 0.6)
    calls, losses, real_logprobs, real_loss = [], [], grpo_module.token_logprobs, grpo_module.grpo_loss
    def logprobs(model, ids, temperature=1.0, **kw):  # noqa: E306
        out = real_logprobs(model, ids, temperature, **kw)
        calls.append((model is policy, temperature, torch.is_grad_enabled(), out))
        return out
    def loss(logp, old, ref, *args):  # noqa: E306
        losses.append((logp, old))
        return real_loss(logp, old, ref, *args)
    monkeypatch.setattr(grpo_module, "token_logprobs", logprobs)
    monkeypatch.setattr(grpo_module, "grpo_loss", loss)
    update(policy, reference, torch.optim.SGD(policy.parameters(), lr=0.5), batch,
           cfg(temperature=0.6, micro_batch=3, updates_per_step=updates))
    assert all(t == 0.6 for _, t, _, _ in calls)
    before = [out for is_policy, _, grad, out in calls if is_policy and not grad]
    assert len(losses) == 4  # 12 rows in micro-batches of 3
    if updates == 1:
        assert before == []  # one pass fewer
        assert all(torch.equal(old, logp.detach()) and not old.requires_grad for logp, old in losses)
    else:
        assert len(before) == 4 and all(old is b for (_, old), b in zip(losses, before))
        moved = [not torch.equal(old, logp.detach()) for logp, old in losses[2:]]  # after the first SGD step
        assert all(moved)


@pytest.mark.parametrize("train_on_teacher", [False, True])
def test_rollout_masks_follow_train_on_teacher_tokens(monkeypatch, train_on_teacher):
    c = TOK.commands
    student, call, teacher = TOK.encode("So 4"), [c.call_id, c.digit_ids[3], c.end_id], TOK.encode("2 ok")
    rows = [student + call + teacher, TOK.encode("So 41")]
    authors = [[TEXT] * len(student) + [COMMAND] * 3 + [TEACHER] * len(teacher), [TEXT] * len(rows[1])]
    monkeypatch.setattr(grpo_module, "relay_generate", lambda *a, **kw: RelayOutput(rows, authors, [1, 0], {}))
    batch = rollout(None, None, TOK, QUESTIONS[:1], GRPOConfig(group_size=2, max_new_tokens=32,
                                                              train_on_teacher_tokens=train_on_teacher), step=0)
    assert batch["masks"][1] == [True] * len(rows[1])
    assert batch["masks"][0] == [True] * (len(student) + 3) + [train_on_teacher] * len(teacher)


def test_a_run_killed_between_its_metrics_line_and_its_checkpoint_resumes_to_the_same_log(judged, tmp_path):
    """save_every = 2: step 2 is logged, then the run dies before its checkpoint; resuming from the step-2
    checkpoint drops that line and redoes step 2, so the log equals an uninterrupted run's."""
    from relay_ref.grpo import train_grpo
    import json
    run = dict(steps=4, prompts_per_step=2, group_size=2, lr=1e-2, max_new_tokens=6, save_every=2, seed=3)

    def die_at_step_2(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    full = train_grpo(tiny(0), tiny(0), tiny(7), TOK, QUESTIONS, GRPOConfig(**run), tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train_grpo(tiny(0), tiny(0), tiny(7), TOK, QUESTIONS, GRPOConfig(**run), tmp_path / "b", on_step=die_at_step_2)
    resumed = train_grpo(tiny(0), tiny(0), tiny(7), TOK, QUESTIONS, GRPOConfig(**run), tmp_path / "b", resume=True)
    logs = [[json.loads(l) for l in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in "ab"]
    assert [l["step"] for l in logs[1]] == [0, 1, 2, 3]
    assert [l["reward"] for l in logs[1]] == [l["reward"] for l in logs[0]]
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_the_warmup_loss_is_the_mean_cross_entropy_of_the_response_tokens():
    """Padding and prompt tokens count in neither the sum nor the count (D11's SFT, token-mean)."""
    from relay_ref.sft import collate, sft_loss
    model = tiny(0)
    prompts, responses = [[1, 2, 3], [4]], [[5, 6], [7, 8, 9, 10, 11]]
    ids, mask = collate(prompts, responses)
    with torch.no_grad():
        loss = sft_loss(model, ids, mask).item()
        by_hand = []
        for p, r in zip(prompts, responses):
            logits = model(torch.tensor([p + r]))[0, len(p) - 1:-1]
            by_hand.append(torch.nn.functional.cross_entropy(logits, torch.tensor(r), reduction="sum"))
    assert loss == pytest.approx(float(sum(by_hand)) / 7, rel=1e-5)
