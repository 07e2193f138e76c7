"""GRPO for the relay student (paper §3.2; D8-D10; docs/design.md §GRPO): rollouts with the teacher, rewards per
group, advantages, and the clipped objective with a k3 KL penalty against the frozen warm-up model.

One step, read top to bottom in `train_grpo`:
1. draw `prompts_per_step` questions (a fixed order derived from the seed) and sample G relay responses
   each with `relay_generate` (the student is the policy, the teacher is frozen);
2. score each response from its full text, whoever wrote it (D13), measure its call ratio rho (D6),
   and reward it by the difficulty-aware rule of its group (D10) or the simple reward (Eq. 3);
3. advantages per group (Eq. 2), broadcast over the tokens the student sampled (mask, D8);
4. old log-probs by the training model before any update (GRPO (a); with one update per step its training
   forward's own, detached: the same bits, one pass fewer), reference ones from the warm-up model; the
   token-mean clipped loss over all micro-batches (D9); AdamW with gradient clipping, `updates_per_step` steps.
A group with an unscorable gold (`answers.is_scorable`) trains nothing (design.md §GRPO (b)). A non-finite
loss, gradient, AdamW step or updated parameter stops the run before the next checkpoint.
"""
from __future__ import annotations  # scripts/train_grpo.py reads GRPOConfig's field types as strings

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .answers import is_correct, is_scorable
from .commands import call_ratio, loss_mask, teacher_view
from .errors import UserError
from .grpo_loss import ADVANTAGE_SCALES, group_advantages, grpo_loss, token_logprobs
from .relay import relay_generate
from .rewards import group_rewards, simple_rewards
from .run_state import find_checkpoint, load_checkpoint, metrics_before, save_checkpoint
from .sft import collate, step_with_command_rows

REWARDS = ("difficulty", "simple")  # D10's difficulty-aware table; Eq. 3


@dataclass
class GRPOConfig:
    steps: int = 100
    prompts_per_step: int = 32  # paper Table 7: global batch 32 prompts
    group_size: int = 8  # G
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.01  # k3 KL coefficient
    temperature: float = 1.0  # rollout temperature, also the log-prob temperature
    top_p: float = 1.0
    teacher_temperature: float | None = None  # None: the student's (D4)
    max_new_tokens: int = 8192
    reward: str = "difficulty"  # or "simple" (paper Eq. 3)
    independence_bonus: float = 1.5  # ablation: 1.0
    exploration: bool = True  # ablation: False sets rho -> 0 in Teacher-Unsolvable
    advantage_scale: str = "group"  # paper Eq. 2; "none": r - mean (design.md §GRPO (b))
    train_on_teacher_tokens: bool = False  # True reproduces the released code (D8)
    fixed_call_tokens: int | None = None  # paper §5.4 Fixed-k
    teacher_free: bool = False  # calls banned in the rollouts: the paper's GRPO baseline (§4.2)
    max_calls: int | None = None
    max_call_tokens: int | None = None  # D2's optional cap on n (the toy world's responses are ~60 tokens)
    rollout_slots: int | None = None  # rows decoded at once (continuous batching; bounds the KV caches); None: all
    micro_batch: int = 8  # rows per forward/backward
    updates_per_step: int = 1  # optimizer steps per rollout batch (the release: 4)
    command_lr_scale: float = 1.0  # the new command tokens' rows learn this much faster (sft.step_with_command_rows)
    save_every: int = 10
    seed: int = 0

    def __post_init__(self):  # fail at configuration time, not after the warm-up has run
        if self.reward not in REWARDS:
            raise UserError(f"reward {self.reward!r}: choose 'difficulty' (D10) or 'simple' (Eq. 3)")
        if self.advantage_scale not in ADVANTAGE_SCALES:
            raise UserError(f"advantage_scale {self.advantage_scale!r}: choose 'group' (Eq. 2) or 'none'")
        if self.group_size < 2:
            raise UserError(f"group_size {self.group_size}: GRPO needs G >= 2 samples per question")
        if not 1 <= self.updates_per_step <= (micro := -(-self.prompts_per_step * self.group_size // self.micro_batch)):
            raise UserError(f"updates_per_step {self.updates_per_step}: choose 1..{micro}, the micro-batches of a step")


class NonFiniteLoss(FloatingPointError):
    pass


def make_optimizer(model, cfg: GRPOConfig):
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def rollout(policy, teacher, tokenizer, questions, cfg: GRPOConfig, step: int) -> dict:
    """G relay samples per question in one continuous-batching call over the step's P x G rows (row i's
    samples depend on (cfg.seed, step, i) only, not on `rollout_slots`); rewards and advantages per group."""
    G = cfg.group_size
    prompts = [tokenizer.chat_prompt(q["problem"]) for q in questions for _ in range(G)]
    with tqdm(total=len(prompts), desc=f"rollouts of step {step}", unit="response", leave=False) as bar:
        out = relay_generate(policy, teacher, prompts, commands=tokenizer.commands, max_new_tokens=cfg.max_new_tokens,
                             eos_ids=tokenizer.eos_ids, temperature=cfg.temperature,
                             teacher_temperature=cfg.teacher_temperature, top_p=cfg.top_p,
                             seed=cfg.seed * 1_000_003 + step, slots=min(cfg.rollout_slots or len(prompts), len(prompts)),
                             fixed_call_tokens=cfg.fixed_call_tokens, max_calls=cfg.max_calls,
                             max_call_tokens=cfg.max_call_tokens, teacher_free=cfg.teacher_free,
                             student_vocab_limit=len(tokenizer), teacher_vocab_limit=len(tokenizer), on_done=bar.update)
    tokens, authors, calls, teacher_masks = out.tokens, out.authors, out.calls, out.teacher_mask
    # D13 reads the answer from the response's text: student and teacher tokens, without the command tokens
    # (the teacher view, D3), so a call inside `\boxed{...}` does not hide the answer.
    texts = [tokenizer.decode(teacher_view(t, a)) for t, a in zip(tokens, authors)]
    correct = [is_correct(text, q["answer"]) for text, q in zip(texts, (q for q in questions for _ in range(G)))]
    ratios = [call_ratio(m) for m in teacher_masks]
    groups = [i // G for i in range(len(prompts))]
    rewards = simple_rewards(correct, ratios) if cfg.reward == "simple" else group_rewards(
        correct, ratios, groups, independence_bonus=cfg.independence_bonus, exploration=cfg.exploration)
    n_teacher, n_all = sum(map(sum, teacher_masks)), sum(map(len, tokens))
    metrics = {"reward": sum(rewards) / len(rewards), "accuracy": sum(correct) / len(correct),
               "call_ratio": n_teacher / max(n_all, 1), "calls_per_response": sum(calls) / len(calls),
               "response_tokens": n_all / len(tokens),
               "no_call_share": sum(r == 0 for r in ratios) / len(ratios),  # responses the teacher never wrote in
               "no_call_accuracy": sum(c for c, r in zip(correct, ratios) if r == 0) / max(1, ratios.count(0.0)),
               "frac_zero_std": sum(max(rewards[g * G:(g + 1) * G]) - min(rewards[g * G:(g + 1) * G]) <= 1e-9
                                    for g in range(len(questions))) / len(questions)}
    scorable = [is_scorable(q["answer"]) for q in questions]  # an unscorable gold's group trains nothing
    metrics["unscorable_groups"] = scorable.count(False)
    keep = torch.tensor([float(scorable[g]) for g in groups])
    return {"prompts": prompts, "tokens": tokens, "advantages": group_advantages(rewards, groups, scale=cfg.advantage_scale) * keep,
            "masks": [loss_mask(a, cfg.train_on_teacher_tokens) if k else [False] * len(a) for a, k in zip(authors, keep)],
            "metrics": metrics}


def update(policy, ref, optimizer, batch: dict, cfg: GRPOConfig, commands=None, vocab_limit=None) -> dict:
    """Old and reference log-probs (no grad, the same micro-batches, the sampler's `vocab_limit`), then
    `cfg.updates_per_step` clipped updates on near-equal runs of micro-batches."""
    device, rows = policy.device, list(range(len(batch["tokens"])))
    micro = [rows[i:i + cfg.micro_batch] for i in range(0, len(rows), cfg.micro_batch)]
    inputs = [collate([batch["prompts"][i] for i in mb], [batch["tokens"][i] for i in mb],
                      [batch["masks"][i] for i in mb], device=device) for mb in micro]
    lp = lambda model, ids: token_logprobs(model, ids, cfg.temperature, vocab_limit=vocab_limit)  # noqa: E731
    with torch.no_grad():  # one update: the policy has not moved, so its training forward gives the old log-probs
        old = [None if cfg.updates_per_step == 1 else lp(policy, ids) for ids, _ in inputs]
        ref_lp = [lp(ref, ids) for ids, _ in inputs]
    n_updates, stats = cfg.updates_per_step, {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "grad_norm": 0.0}
    policy.train()
    for u in range(n_updates):
        chunk = range(u * len(micro) // n_updates, (u + 1) * len(micro) // n_updates)
        n_tokens = sum(int(inputs[k][1].sum()) for k in chunk)  # M: fixed before the micro-batch loop
        optimizer.zero_grad(set_to_none=True)
        for k in chunk:
            ids, mask = inputs[k]
            logp = lp(policy, ids)
            loss, st = grpo_loss(logp, logp.detach() if old[k] is None else old[k], ref_lp[k], batch["advantages"][micro[k]].to(device), mask, n_tokens,
                                 cfg.eps_low, cfg.eps_high, cfg.beta)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"the GRPO loss is {loss.item()}")
            loss.backward()
            w = st["tokens"] / max(n_tokens, 1)
            for key, value in (("loss", loss.item()), ("clip_frac", st["clip_frac"] * w), ("kl", st["kl"] * w)):
                stats[key] += value
        norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        if not torch.isfinite(norm):
            raise NonFiniteLoss(f"the gradient norm is {norm.item()}")
        try:
            step_with_command_rows(optimizer, policy, commands, cfg.command_lr_scale)
        except (OverflowError, RuntimeError) as e:  # AdamW at an lr beyond float range
            if "overflow" not in str(e):
                raise
            raise NonFiniteLoss(f"the AdamW step overflowed at lr {cfg.lr}") from None
        if not torch.isfinite(torch.nn.utils.get_total_norm(list(policy.parameters()))):  # one fused check
            raise NonFiniteLoss(f"the parameters are not finite after the update at lr {cfg.lr}")
        stats["grad_norm"] = norm.item()
    policy.eval()
    return {k: v / n_updates if k != "grad_norm" else v for k, v in stats.items()}


def question_order(n_questions: int, steps: int, per_step: int, seed: int) -> list[int]:
    """A fixed question order for the whole run: reshuffled each epoch, derived from the seed alone."""
    if n_questions < 1:
        raise UserError("no training questions: the question order would never fill")
    order, epoch = [], 0
    while len(order) < steps * per_step:
        order += random.Random(seed * 7919 + epoch).sample(range(n_questions), n_questions)
        epoch += 1
    return order


def train_grpo(policy, ref, teacher, tokenizer, questions, cfg: GRPOConfig, run_dir, resume=False, on_step=None):
    """Run GRPO; checkpoints in run_dir/checkpoint, metrics in run_dir/metrics.jsonl. Returns the policy."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt, metrics_path, start = run_dir / "checkpoint", run_dir / "metrics.jsonl", 0
    for m in (ref, teacher):
        m.requires_grad_(False).eval()
    if resume and find_checkpoint(ckpt):
        policy, optimizer, start = load_checkpoint(ckpt, lambda m: make_optimizer(m, cfg), device=policy.device)
        metrics_path.write_text("".join(l + "\n" for l in metrics_before(metrics_path, start)))
    else:
        optimizer = make_optimizer(policy, cfg)
        metrics_path.write_text("")
    order = question_order(len(questions), cfg.steps, cfg.prompts_per_step, cfg.seed)
    bar = tqdm(range(start, cfg.steps), desc="GRPO", unit="step", initial=start, total=cfg.steps)
    for step in bar:
        t0 = time.time()
        qs = [questions[i] for i in order[step * cfg.prompts_per_step:(step + 1) * cfg.prompts_per_step]]
        batch = rollout(policy, teacher, tokenizer, qs, cfg, step)
        try:
            stats = update(policy, ref, optimizer, batch, cfg, tokenizer.commands, vocab_limit=len(tokenizer))
        except NonFiniteLoss as err:
            raise NonFiniteLoss(f"step {step}: {err}; stopped before a checkpoint was written, the last good "
                                f"checkpoint in {ckpt} is intact") from None
        record = {"step": step, **batch["metrics"], **stats, "seconds": time.time() - t0}
        with metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        bar.set_postfix(reward=f"{record['reward']:.2f}", acc=f"{record['accuracy']:.2f}",
                        calls=f"{record['call_ratio']:.1%}")
        if on_step is not None:
            on_step(record)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt, policy, tokenizer, optimizer, step + 1, {"config": asdict(cfg)})
    return policy
