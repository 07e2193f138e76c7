"""One model with its own static KV cache: lazy catch-up `extend`, fixed-shape `decode`, CUDA graphs.

Paper §3.1 (relay inference) needs two models that each keep a cache over their own view of the text.
`ModelRunner` is that per-model engine (docs/design.md, decoding):
- `extend(slots, views)`: bring each slot up to `view`, starting from the longest prefix it already holds
  (prompt prefill, a teacher catching up at a call, a rollback are all this one rule), and sample the next
  token. Runs eagerly, in column chunks, new tokens right-aligned so every row ends in the last column.
- `decode(slots, tokens)`: append one token per row and sample the next. This is `step` with W = 1,
  padded to a batch bucket (padding rows write to the cache's sink slot). On CUDA each (batch bucket,
  KV-length bucket) is captured once in a CUDA graph and replayed; elsewhere the same `step` runs eagerly.

`step` is a pure function of static tensors: no `.item()`, no `.tolist()`, no data-dependent branch; its
draws are keyed by `rows` (prompt indices, sampling.py). `admit` gives a finished row's slot to the next
prompt, and `extend` catches it up from the prefix the slot still holds (e.g. the chat-template head).
"""

import torch

from .kv_cache import KVCache
from .sampling import exp_noise, row_key, sample


def bucket(n: int, cap: int, smallest: int = 1) -> int:
    """The smallest power of two >= n (at least `smallest`), capped at `cap`."""
    b = smallest
    while b < n:
        b *= 2
    return min(b, cap)


def check_requests(prompts, max_new_tokens: int, slots: int | None, **models) -> int:
    """The checks every sampler makes before any work; returns the slot count (default: all prompts)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("sampling needs at least one prompt, and every prompt at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"the response budget max_new_tokens={max_new_tokens} is negative")
    n_slots = len(prompts) if slots is None else slots
    if not 1 <= n_slots <= len(prompts):
        raise ValueError(f"slots={slots}: choose 1 to {len(prompts)} (the number of prompts)")
    for name, model in models.items():
        V, ctx = model.config.vocab_size, model.config.max_position_embeddings
        for r, p in enumerate(prompts):
            for i, t in ((i, t) for i, t in enumerate(p) if not 0 <= t < V):
                raise ValueError(f"prompt {r}, position {i}: token id {t} is outside the {name}'s {V} embedding rows")
            if len(p) >= ctx:
                raise ValueError(f"prompt {r} has {len(p)} tokens: the {name}'s context is {ctx} positions")
    return n_slots


def admit(slot_of: dict, n_slots: int, waiting: list) -> list[int]:
    """Give every free slot to the next waiting row, in prompt order (slot_of: live row -> slot)."""
    free = sorted(set(range(n_slots)) - set(slot_of.values()))
    new, waiting[:len(free)] = waiting[:len(free)], []
    slot_of.update(zip(new, free))
    return new


def transposed_head(model) -> torch.Tensor:
    """The head as [hidden, vocab] (CPU BLAS streams it 3x faster than [vocab, hidden]; it dominates small
    models' decode), copied on first use and again only once an optimizer step or a load bumps its version."""
    w = model.lm_head.weight
    key = (w.data_ptr(), w._version)
    cached = model.__dict__.get("_head_t")
    if cached is None or cached[0] != key:
        cached = model.__dict__["_head_t"] = (key, w.detach().t().contiguous())
    return cached[1]


class ModelRunner:
    def __init__(self, model, n_slots: int, max_len: int, *, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, salt: int = 0, banned_ids=(), vocab_limit: int | None = None,
                 cuda_graphs: bool | None = None, prefill_chunk: int = 512):
        self.model, self.device = model, model.device
        # Under autocast K/V come out in the autocast dtype: a float32 policy caches bf16, not float32.
        amp = torch.is_autocast_enabled(self.device.type)
        self.cache = KVCache(model.config, n_slots, max_len, self.device,
                             torch.get_autocast_dtype(self.device.type) if amp else model.dtype)
        bias = torch.zeros(model.config.vocab_size, device=self.device)
        if vocab_limit is not None:
            bias[vocab_limit:] = float("-inf")  # embedding rows the tokenizer never produces
        bias[list(banned_ids)] = float("-inf")
        # No bans: skip the add (a full pass over the logits, 3% of a small model's decode step on CPU).
        self.logit_bias = bias if bool(torch.isinf(bias).any()) else None
        self.temperature, self.top_p = temperature, top_p
        self.head_t = None  # see extend()
        self.seed, self.salt = torch.seed() if seed is None else seed, salt  # salt: one stream per model
        self.cuda_graphs = (self.device.type == "cuda") if cuda_graphs is None else cuda_graphs
        self.graphs, self.pool, self.prefill_chunk = {}, None, prefill_chunk
        self.forward_tokens = 0  # token positions this model has processed (the relay's cost accounting)

    @torch.no_grad()
    def step(self, tokens, positions, slots, temperature, keys, kv_len: int):
        """tokens/positions/slots [B, W], row keys [B] -> next token [B] sampled after each row's last
        column, with noise that is a function of (row key, the drawn token's position) only."""
        h = self.model.hidden_states(tokens, cache=self.cache, positions=positions, slots=slots, kv_len=kv_len)
        h = h[:, -1]
        logits = (h @ self.head_t if self.head_t is not None else self.model.lm_head(h)).float()
        if self.logit_bias is not None:  # a per-runner constant, like the temperature test below
            logits = logits + self.logit_bias
        if self.temperature == 0:  # a per-runner constant, not a data-dependent branch
            return logits.argmax(dim=-1)
        top_p = None if self.top_p >= 1 else torch.full_like(temperature, self.top_p)
        return sample(logits, temperature, exp_noise(keys, positions[:, -1] + 1, logits.shape[-1]), top_p)

    def _sampling_inputs(self, rows: list[int]):
        """Temperature and row keys [B]; rows are prompt indices (-1: a padding row)."""
        temp = torch.full((len(rows),), float(self.temperature), device=self.device)
        return temp, row_key(self.seed, self.salt, torch.tensor(rows, dtype=torch.long)).to(self.device)

    @torch.no_grad()
    def extend(self, slots: list[int], views: list[list[int]], rows: list[int] | None = None):
        """Catch each slot up to its view (lazy, from the longest cached prefix); next token per row.
        `rows` (default: the slots) key each row's random draws."""
        if self.head_t is None and self.device.type == "cpu":
            self.head_t = transposed_head(self.model)
        cache, starts = self.cache, [self.cache.common_prefix(s, v) for s, v in zip(slots, views)]
        cache.in_order = False  # a catch-up gathers (its rows need not be slots 0..B-1)
        news = [v[lcp:] for v, lcp in zip(views, starts)]
        W, B = max(len(n) for n in news), len(slots)
        tok, pos = torch.zeros(B, W, dtype=torch.long), torch.zeros(B, W, dtype=torch.long)
        slot = torch.full((B, W), cache.sink, dtype=torch.long)
        for r, (s, lcp, new) in enumerate(zip(slots, starts, news)):
            if lcp + len(new) > cache.max_len:
                raise ValueError(f"sequence of {lcp + len(new)} tokens exceeds the cache length {cache.max_len}")
            pad = W - len(new)  # right-align: every row's last new token is in column W - 1
            tok[r, pad:] = torch.tensor(new)
            pos[r, pad:] = torch.arange(lcp, lcp + len(new))
            slot[r, pad:] = s
            cache.ids[s] = list(views[r])
        self.forward_tokens += sum(len(n) for n in news)
        tok, pos, slot = tok.to(self.device), pos.to(self.device), slot.to(self.device)
        temp, keys = self._sampling_inputs(slots if rows is None else rows)
        for c in range(0, W, self.prefill_chunk):  # chunks bound the [B, W, L] attention mask
            cols = slice(c, min(c + self.prefill_chunk, W))
            kv_len = bucket(int(pos[:, cols].max()) + 1, cache.max_len, 16)
            out = self.step(tok[:, cols], pos[:, cols], slot[:, cols], temp, keys, kv_len)
        return out

    @torch.no_grad()
    def decode(self, slots: list[int], tokens: list[int], rows: list[int] | None = None):
        """Append one token to each slot; return the next token per row (a device tensor [len(slots)])."""
        cache, B, rows = self.cache, len(slots), list(slots if rows is None else rows)
        order = sorted(range(B), key=slots.__getitem__)  # slot order: row i in slot i reads the cache in place
        slots, tokens, rows = ([x[i] for i in order] for x in (slots, tokens, rows))
        in_order = slots == list(range(B))
        positions = []
        for s, t in zip(slots, tokens):
            positions.append(len(cache.ids[s]))
            cache.ids[s].append(t)
        if max(positions) >= cache.max_len:
            raise ValueError(f"sequence exceeds the cache length {cache.max_len}")
        self.forward_tokens += B
        Bb = bucket(B, max(B, cache.n_slots))
        kv_len = bucket(max(positions) + 1, cache.max_len, 16)
        pad = Bb - B  # padding rows: token 0 at position 0 of the sink slot
        host = (torch.tensor(tokens + [0] * pad).view(Bb, 1), torch.tensor(positions + [0] * pad).view(Bb, 1),
                torch.tensor(slots + [cache.sink] * pad).view(Bb, 1))
        temp, keys = self._sampling_inputs(rows + [-1] * pad)
        cache.in_order = in_order  # every decode sets it and every extend clears it
        if not self.cuda_graphs:
            out = self.step(*(t.to(self.device) for t in host), temp, keys, kv_len)[:B]
        else:
            graph, static = self._graph(Bb, kv_len, in_order)
            for buf, val in zip(static, (*host, temp, keys)):  # overwrite every static input, padding included
                buf.copy_(val, non_blocking=True)
            graph.replay()
            out = static[-1][:B].clone()
        return out[torch.tensor(order, device=out.device).argsort()]  # back to the callers' row order

    def advance(self, slot_of: dict, views: dict, tokens: dict) -> dict:
        """{row: next token}: rows in `views` catch up to their view (`extend`), rows in `tokens` append
        their latest token (`decode`); slot_of maps each live row to its slot."""
        out = {}
        for run, todo in ((self.extend, views), (self.decode, tokens)):
            if todo:
                out.update(zip(todo, run([slot_of[r] for r in todo], list(todo.values()), list(todo)).tolist()))
        return out

    def _graph(self, Bb: int, kv_len: int, in_order: bool):
        """Capture `step` for one (batch bucket, KV-length bucket, read in place or gathered); all graphs
        share one memory pool."""
        if (Bb, kv_len, in_order) not in self.graphs:
            d = self.device
            static = [torch.zeros(Bb, 1, dtype=torch.long, device=d) for _ in range(2)]
            static += [torch.full((Bb, 1), self.cache.sink, dtype=torch.long, device=d),
                       torch.zeros(Bb, device=d), torch.zeros(Bb, dtype=torch.long, device=d)]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside capture (allocator, kernels selection)
                self.step(*static, kv_len)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                out = self.step(*static, kv_len)
            self.pool = graph.pool()
            self.graphs[(Bb, kv_len, in_order)] = (graph, static + [out])
        return self.graphs[(Bb, kv_len, in_order)]
