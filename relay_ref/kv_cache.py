"""Static, preallocated KV cache with per-row slots and positions (no left padding, no resizing).

Design (docs/design.md, decoding): per layer one K and one V buffer of shape
[n_slots + 1, max_len, n_kv_heads, head_dim], allocated once. Each sequence owns a slot; each token is
written at (slot, position). Slot `n_slots` is a *sink*: padding rows and padding columns write there,
so a fixed-shape step never needs a data-dependent branch. Reads gather the first `kv_len` positions of
each row's slot (a length bucket chosen by the host); when row i is in slot i (`in_order`: the host sorts
a decode by slot) they read the cache in place, saving the copy (30% of an 8-row CPU decode at KV 1,000).

The host keeps per slot the token ids whose K/V are cached (`ids[slot]`): the relay extends a model's view
lazily from the longest prefix it holds; stale K/V beyond it is masked by position.
"""

import torch


class KVCache:
    def __init__(self, cfg, n_slots: int, max_len: int, device, dtype):
        shape = (n_slots + 1, max_len, cfg.num_key_value_heads, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.n_slots, self.max_len, self.sink = n_slots, max_len, n_slots
        self.ids: list[list[int]] = [[] for _ in range(n_slots)]
        self.in_order = False  # set by each decode, cleared by each extend (a static fact of a step, like kv_len)

    def update(self, layer: int, k, v, slots, positions, kv_len: int):
        """Write k, v [B, W, H, D] at (slots[B, W], positions[B, W]); return this layer's K, V of each
        row's slot over the first kv_len positions: [B, kv_len, H, D] each."""
        self.k[layer].index_put_((slots, positions), k.to(self.k[layer].dtype))  # autocast may hand fp32
        self.v[layer].index_put_((slots, positions), v.to(self.v[layer].dtype))
        if self.in_order:  # padding rows past the live ones read a free slot's K/V; their outputs are dropped
            return self.k[layer][:len(slots), :kv_len], self.v[layer][:len(slots), :kv_len]
        rows = slots.amin(dim=1)  # padding columns hold the sink, the largest slot index
        return self.k[layer][:, :kv_len].index_select(0, rows), self.v[layer][:, :kv_len].index_select(0, rows)

    def common_prefix(self, slot: int, view: list[int]) -> int:
        """Length of the longest prefix of `view` whose K/V this slot already holds, capped at
        len(view) - 1 so that at least one position is recomputed to produce next-token logits."""
        have, n = self.ids[slot], min(len(self.ids[slot]), len(view) - 1)
        if have[:n] == view[:n]:
            return n
        lo, hi = 0, n  # binary search on prefix equality: list slices compare at C speed
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if have[:mid] == view[:mid] else (lo, mid - 1)
        return lo
