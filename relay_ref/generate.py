"""Plain batched generation with one model and its static KV cache (the student alone, the teacher alone).

Ragged prompts need no left padding: each row has its own slot and positions (see kv_cache.py).
A row stops after it emits an EOS id (included in its output) or after max_new_tokens (0: empty rows).
`slots=S` (default: all prompts) is continuous batching, as in relay.py; a row's samples are a pure function
of (seed, prompt index, position), whatever `slots` is (sampling.py).
"""

from .runner import ModelRunner, admit, check_requests


def generate(model, prompts, max_new_tokens, temperature=0.0, top_p=1.0, eos_ids=(), seed=None, slots=None,
             on_done=None, **runner_args) -> list[list[int]]:
    """`on_done(1)` (e.g. a tqdm bar's update) is called as each row finishes."""
    S = check_requests(prompts, max_new_tokens, slots, model=model)
    out = [[] for _ in prompts]
    if max_new_tokens == 0:
        return out
    runner = ModelRunner(model, S, max(map(len, prompts)) + max_new_tokens,
                         temperature=temperature, top_p=top_p, seed=seed, **runner_args)
    slot_of, waiting, nxt = {}, list(range(len(prompts))), {}  # slot_of: live row -> its cache slot
    while True:
        for r in list(slot_of):
            out[r].append(nxt[r])
            if out[r][-1] in eos_ids or len(out[r]) >= max_new_tokens:
                del slot_of[r]
                on_done and on_done(1)
        new = admit(slot_of, S, waiting)
        if not slot_of:
            return out
        nxt = runner.advance(slot_of, {r: list(prompts[r]) for r in new},
                             {r: out[r][-1] for r in slot_of if r not in new})
