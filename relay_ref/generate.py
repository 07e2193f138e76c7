"""Plain batched generation with one model and its static KV cache (the student alone, the teacher alone).

Ragged prompts need no left padding: each row has its own slot and positions (see kv_cache.py).
A row stops after it emits an EOS id (included in its output) or after max_new_tokens.
"""
from __future__ import annotations

from .runner import ModelRunner


def generate(model, prompts, max_new_tokens, temperature=0.0, top_p=1.0, eos_ids=(), seed=None,
             **runner_args) -> list[list[int]]:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and every prompt at least one token")
    runner = ModelRunner(model, len(prompts), max(map(len, prompts)) + max_new_tokens,
                         temperature=temperature, top_p=top_p, seed=seed, **runner_args)
    out = [[] for _ in prompts]
    live = list(range(len(prompts)))
    nxt = runner.extend(live, [list(p) for p in prompts]).tolist() if max_new_tokens > 0 else []
    while live and max_new_tokens > 0:
        for r, t in zip(live, nxt):
            out[r].append(t)
        live = [r for r in live if out[r][-1] not in eos_ids and len(out[r]) < max_new_tokens]
        if live:
            nxt = runner.decode(live, [out[r][-1] for r in live]).tolist()
    return out
