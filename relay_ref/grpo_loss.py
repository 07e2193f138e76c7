"""The GRPO objective with a per-token loss mask (paper §3.2.1, Eq. 1-2; decisions D8, D9; docs/design.md §GRPO (a), (b)).

- `group_advantages`: A_i = (r_i - mean_g) / (std_g + eps) per group, unbiased std, float64; exactly 0 for
  a group whose rewards are all equal (D9). `scale="none"` keeps A_i = r_i - mean_g (design.md §GRPO (b), Dr. GRPO):
  a group whose rewards differ by a few hundredths then gets a few-hundredths advantage, not a full one.
- `token_logprobs`: per-token log pi(y_t | y_<t) at a sampling temperature over the rows the sampler could
  draw (`vocab_limit`, the tokenizer's length, as `ModelRunner`), with the lm_head applied in time chunks so the [B, T, vocab] fp32 logits are never held at once (151,936 columns for Qwen3).
- `grpo_loss`: the clipped per-token-ratio surrogate plus beta * k3 KL to the reference model, summed over
  the tokens the student sampled (mask, D8) and divided by the optimizer batch's masked-token count M
  (token-mean, D9), so the losses of micro-batches add up to the batch loss.
Notation: s is the importance ratio (the paper's rho_i); rho is reserved for the call ratio (rewards.py).
"""

import torch
from torch.utils.checkpoint import checkpoint

ADVANTAGE_SCALES = ("group", "none")  # paper Eq. 2; r - mean (design.md §GRPO (b))

def group_advantages(rewards, group_ids, eps: float = 1e-6, scale: str = "group") -> torch.Tensor:
    """Paper Eq. 2 per group (by group id, not prompt text) -> [N] float32; see the module docstring."""
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"advantage scale {scale!r}: choose 'group' (paper Eq. 2) or 'none'")
    r = torch.as_tensor(rewards, dtype=torch.float64).detach().cpu()
    g = torch.as_tensor(group_ids).detach().cpu()
    if r.shape != g.shape or r.dim() != 1:
        raise ValueError(f"rewards {tuple(r.shape)} and group ids {tuple(g.shape)} must be equal 1-d shapes")
    adv = torch.zeros_like(r)
    for gid in torch.unique(g):
        members = g == gid
        rg = r[members]
        if len(rg) < 2:
            raise ValueError(f"group {gid.item()} has {len(rg)} rollout(s); GRPO needs G >= 2")
        # Equal rewards must give exactly 0: the eps-division would otherwise leave a same-signed residue.
        if rg.max() - rg.min() > 1e-9:
            adv[members] = (rg - rg.mean()) / ((rg.std(unbiased=True) + eps) if scale == "group" else 1.0)
    return adv.float()


def _chunk_logprobs(lm_head, hidden, targets, temperature, vocab_limit):
    logits = lm_head(hidden)[..., :vocab_limit].float() / temperature  # rows >= the limit are never sampled
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def token_logprobs(model, input_ids, temperature: float = 1.0, chunk: int = 1024, vocab_limit=None) -> torch.Tensor:
    """log softmax(logits[:vocab_limit] / temperature)[input_ids[:, t+1]] at each position t -> [B, T-1] float32:
    the log of the probability the sampler drew the token with (None: every row)."""
    hidden = model.hidden_states(input_ids)[:, :-1]
    targets = input_ids[:, 1:]
    out = []
    for start in range(0, targets.shape[1], chunk):
        args = (model.lm_head, hidden[:, start:start + chunk], targets[:, start:start + chunk], temperature, vocab_limit)
        if torch.is_grad_enabled():
            # Recompute the chunk's logits in backward, so autograd keeps only [B, chunk] per chunk.
            out.append(checkpoint(_chunk_logprobs, *args, use_reentrant=False))
        else:
            out.append(_chunk_logprobs(*args))
    return torch.cat(out, dim=1) if out else hidden.new_zeros(targets.shape, dtype=torch.float32)


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, n_tokens, eps_low: float = 0.2,
              eps_high: float = 0.2, beta: float = 0.01):
    """Paper Eq. 1 (D9) on one micro-batch: loss = sum_{masked t} L_t / n_tokens, with per token
        s = exp(clamp(logp - old_logp, +-20)),  L = -min(s*A, clip(s, 1-eps_low, 1+eps_high)*A) + beta*k3,
        k3 = exp(ref - logp) - (ref - logp) - 1   (log-ratio clamped +-20, value clamped +-10).
    logp/old_logp/ref_logp/mask: [B, T]; advantages: [B] (broadcast over tokens) or [B, T]; n_tokens: the
    masked-token count M of the whole optimizer batch (all micro-batches), fixed before micro-batching.
    Returns (loss, stats) with stats floats: clip_frac, kl (mean k3), ratio_mean, tokens (masked here)."""
    mask = mask.bool()
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    # where(), not multiplication by the mask: masked positions may hold inf/NaN (teacher tokens, padding)
    # and NaN * 0 = NaN would leak into the loss and, through backward, into the gradients.
    adv = torch.where(mask, adv, 0)
    log_s = torch.where(mask, logp - old_logp, 0).clamp(-20, 20)
    s = log_s.exp()
    unclipped, clipped = s * adv, s.clamp(1 - eps_low, 1 + eps_high) * adv
    log_ref = torch.where(mask, ref_logp - logp, 0).clamp(-20, 20)
    k3 = (log_ref.exp() - log_ref - 1).clamp(-10, 10)
    per_token = torch.where(mask, -torch.minimum(unclipped, clipped) + beta * k3, 0)
    loss = per_token.sum() / max(float(n_tokens), 1.0)
    with torch.no_grad():
        count = mask.sum()
        denom = count.clamp(min=1)
        stats = torch.stack([(mask & (clipped < unclipped)).sum() / denom, torch.where(mask, k3, 0).sum() / denom,
                             torch.where(mask, s, 0).sum() / denom, count.to(s.dtype)]).tolist()
    return loss, dict(zip(("clip_frac", "kl", "ratio_mean", "tokens"), stats))
