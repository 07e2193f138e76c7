"""Next-token sampling without host syncs: greedy, temperature and top-p, selected per row by `where`.

A categorical draw is made by the exponential race: argmax(p / E) with E ~ Exp(1) elementwise is an
exact sample from p (the Gumbel-max trick in disguise) and, unlike `torch.multinomial`, never syncs
with the host. The noise E is filled *outside* the step from a seeded generator, so a captured CUDA graph
replays with fresh noise and every run is reproducible from its seed.
"""
from __future__ import annotations

import torch


def sample(logits, temperature, noise, top_p=None):
    """logits [B, V] fp32; temperature [B] (0 = greedy); noise [B, V] ~ Exp(1); top_p [B] or None.

    `top_p=None` skips the sort entirely; it is a per-graph constant, never a data-dependent branch."""
    probs = torch.softmax(logits / temperature.clamp_min(1e-5).unsqueeze(-1), dim=-1)
    if top_p is not None:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p: the boundary token stays in.
        drop = (sorted_p.cumsum(-1) - sorted_p >= top_p.unsqueeze(-1)) & (top_p < 1).unsqueeze(-1)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    drawn = (probs / noise).argmax(dim=-1)
    return torch.where(temperature == 0, logits.argmax(dim=-1), drawn)
