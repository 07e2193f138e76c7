"""Next-token sampling without host syncs, and random draws that do not depend on the batch.

The exponential race: argmax(p / E) with E ~ Exp(1) elementwise is an exact sample from p (Gumbel-max in
disguise) that, unlike `torch.multinomial`, never syncs with the host. E is counter-based: a fixed integer
hash of (row key, position, vocabulary id), so a row's draws are a pure function of (seed, stream salt,
prompt index, position): not of its batch, its slot or its schedule. It is made on the device inside the
step from the row keys (static inputs of a captured CUDA graph). `mix` works on Python ints and int64
tensors alike and every product stays below 2^63, so the hash is bit-identical on CPU and CUDA.
"""

import torch

M32 = 0xFFFFFFFF


def mix(x):
    """A 32-bit integer hash (two multiply-xorshift rounds) of x in [0, 2^32): an int or int64 tensor."""
    x = ((x >> 16) ^ x) * 0x45D9F3B & M32
    x = ((x >> 16) ^ x) * 0x45D9F3B & M32
    return (x >> 16) ^ x


def row_key(seed: int, salt: int, row):
    """Seed and salt pick the stream (student 0, teacher 1, random caller 2); row is the prompt index."""
    return mix((mix(mix(seed & M32) ^ salt) + row) & M32)


def uniform(key, position):
    """U(0, 1) from a row key and a counter on a 2^-23 grid, exact in float32: never exactly 0 or 1."""
    return ((mix((key + position * 0x9E3779B1) & M32) >> 9) + 0.5) / 2 ** 23


def exp_noise(keys, positions, vocab: int):
    """keys, positions [B] int64 -> E [B, vocab] ~ Exp(1), one independent draw per (row, position, id)."""
    per_row = mix((keys + positions * 0x9E3779B1) & M32).unsqueeze(-1)
    return -torch.log(uniform(per_row, torch.arange(vocab, device=keys.device)))


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
