"""Warm-up SFT (paper §3.1; D11): teach the student the syntax of `<call>n</call>` before RL.

The data are the vanilla student's own sampled responses (no distribution shift) with 0-3 commands
inserted at random token boundaries (`data.insert_commands`); the tokens after a command are the
student's own continuation, a train/inference mismatch the paper accepts because warm-up only teaches
the format. The loss is cross-entropy on response tokens only, command tokens included.

Two switches depart from the paper for a small student (the toy preset; PAPER_NOTES.md, docs/benchmarks.md
§2): `unsure_below` puts the commands only before tokens where the student itself was unsure, and
`commands_only` trains only the `<call>`/`</call>` rows, so the warm-up cannot wear the student's own text.
"""

import math
import random

import torch
from tqdm.auto import tqdm

from .data import insert_commands
from .generate import generate
from .grpo_loss import token_logprobs


def collate(prompts, responses, masks=None, device="cpu"):
    """Right-padded prompt+response rows -> ids [B, T] and loss mask [B, T-1] (position t predicts ids[t+1]),
    True on response tokens (where `masks[i][j]`, if given), found from lengths (a pad id may be an EOS id)."""
    T = max(len(p) + len(r) for p, r in zip(prompts, responses))
    ids = torch.zeros(len(prompts), T, dtype=torch.long)
    mask = torch.zeros(len(prompts), T - 1, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, :len(p) + len(r)] = torch.tensor(list(p) + list(r))
        mask[i, len(p) - 1:len(p) - 1 + len(r)] = torch.tensor(masks[i] if masks is not None else [True] * len(r),
                                                               dtype=torch.bool)
    return ids.to(device), mask.to(device)


def sft_loss(model, ids, mask):
    logp = token_logprobs(model, ids)
    return -torch.where(mask, logp, 0).sum() / mask.sum().clamp(min=1)


@torch.no_grad()
def unsure_boundaries(model, prompts, responses, below: float) -> list[list[int]]:
    """Per response, the boundaries t where the model's top-1 probability for response[t] (at T = 1, given
    everything before it) is below `below`: the signal of the confidence-threshold baseline (paper §5)."""
    out = []
    for p, r in zip(prompts, responses):  # one row at a time: a [T, vocab] softmax, not [B, T, vocab]
        logits = model(torch.tensor([list(p) + list(r)], device=model.device))[0, len(p) - 1:-1]
        out.append(torch.nonzero(torch.softmax(logits, dim=-1).amax(dim=-1) < below).flatten().tolist())
    return out


def make_warmup_examples(student, tokenizer, questions, *, temperature=1.0, max_new_tokens=512,
                         batch_size=64, seed=0, max_commands=3, max_exponent=3, unsure_below=None):
    """D11: sample one response per question from the vanilla student (`batch_size` rows at a time,
    continuous batching; limited to the tokenizer's rows, the untrained command tokens banned), then insert
    commands (only where the student was unsure, if `unsure_below` is given; see `unsure_boundaries`)."""
    rng, c = random.Random(seed), tokenizer.commands
    prompts = [tokenizer.chat_prompt(q["problem"]) for q in questions]
    with tqdm(total=len(prompts), desc="warm-up data", unit="response") as bar:
        responses = generate(student, prompts, max_new_tokens, temperature=temperature, eos_ids=tokenizer.eos_ids,
                             seed=seed, slots=min(batch_size, len(prompts)), vocab_limit=len(tokenizer),
                             banned_ids=(c.call_id, c.end_id), on_done=bar.update)
    allowed = (unsure_boundaries(student, prompts, responses, unsure_below) if unsure_below is not None
               else [None] * len(prompts))
    return [{"prompt_ids": p, "response_ids": insert_commands(r, c, rng, max_commands, max_exponent, boundaries=b)}
            for p, r, b in zip(prompts, responses, allowed)]


def command_row_weights(model) -> list:
    """embed_tokens.weight and lm_head.weight, the tensors that hold the command tokens' rows (once if tied)."""
    return list({id(w): w for w in (model.model.embed_tokens.weight, model.lm_head.weight)}.values())


def step_with_command_rows(optimizer, model, commands=None, scale: float = 1.0) -> None:
    """`optimizer.step()`, then the embedding and lm_head rows of `<call>`/`</call>` (`commands`) moved `scale`
    times as far. They are new tokens (D1) whose rows start untrained, while the rest of a small student degrades
    at the lr it would take to learn a call from scratch (docs/benchmarks.md §2). Adam normalizes gradients, so
    a per-row lr cannot come from scaling them; the rows' step itself is scaled."""
    if scale == 1 or commands is None:
        optimizer.step()
        return
    weights = command_row_weights(model)
    rows = [commands.call_id, commands.end_id]
    before = [w.detach()[rows].clone() for w in weights]
    optimizer.step()
    with torch.no_grad():
        for w, b in zip(weights, before):
            w[rows] = b + scale * (w[rows] - b)


def freeze_all_but_command_rows(model, commands):
    """Only the `<call>`/`</call>` rows of embed_tokens and lm_head keep a gradient; returns those weights
    and an `undo()`. Adam leaves an entry whose gradient is always zero where it is (with no weight decay)."""
    weights = command_row_weights(model)
    was = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(any(p is w for w in weights))
    rows = torch.zeros(weights[0].shape[0], 1, dtype=weights[0].dtype, device=weights[0].device)
    rows[[commands.call_id, commands.end_id]] = 1
    hooks = [w.register_hook(lambda g: g * rows) for w in weights]

    def undo():
        for h in hooks:
            h.remove()
        for p, r in zip(model.parameters(), was):
            p.requires_grad_(r)
    return weights, undo


def train_sft(model, examples, *, epochs=1, batch_size=32, lr=2e-5, warmup_ratio=0.03, weight_decay=0.0,
              grad_clip=1.0, seed=0, commands=None, command_lr_scale=1.0, commands_only=False, micro_batch=None):
    """AdamW, linear warm-up then linear decay (the release's settings as defaults); the command rows learn
    `command_lr_scale` times faster, and with `commands_only` nothing else learns. `micro_batch` rows per
    forward/backward (default: the whole batch) leave the loss the batch's token mean. Returns the losses."""
    if commands_only and (commands is None or weight_decay):
        raise ValueError("commands_only needs the command tokens and weight_decay=0 (decay would move frozen rows)")
    order = [i for e in range(epochs) for i in random.Random(seed + e).sample(range(len(examples)), len(examples))]
    steps = math.ceil(len(order) / batch_size)
    params, undo = freeze_all_but_command_rows(model, commands) if commands_only else (model.parameters(), None)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = max(1, int(warmup_ratio * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm + 1))))
    try:
        model.train()
        losses, bar = [], tqdm(range(steps), desc="warm-up SFT", unit="step")
        for step in bar:
            batch = [examples[i] for i in order[step * batch_size:(step + 1) * batch_size]]
            n, mb, loss = max(1, sum(len(b["response_ids"]) for b in batch)), micro_batch or len(batch), 0.0
            opt.zero_grad(set_to_none=True)
            for part in (batch[r:r + mb] for r in range(0, len(batch), mb)):
                ids, mask = collate([b["prompt_ids"] for b in part], [b["response_ids"] for b in part],
                                    device=model.device)
                part_loss = sft_loss(model, ids, mask) * mask.sum() / n  # its share of the batch's token mean
                if not torch.isfinite(part_loss):
                    raise FloatingPointError(f"warm-up SFT step {step}: loss is {part_loss.item()}")
                part_loss.backward()
                loss += part_loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            step_with_command_rows(opt, model, commands, command_lr_scale)
            sched.step()
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.3f}")
    finally:
        if undo:  # also after an error: the model must not stay frozen
            undo()
    model.eval()
    return losses
