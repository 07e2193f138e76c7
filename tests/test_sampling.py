"""Sampling draws from the distribution it is given (temperature 1) and top-p keeps the boundary token.

The model is a lookup model (test_relay.py) whose logits after token K are set to log p: the frequencies of
thousands of one-token samples must match p. Seeded, so the test is deterministic; the tolerance is many
standard errors wide.
"""
import math

import torch
from test_relay import V, lookup_model

import relay_ref

K, ROWS = 5, 4000


def model_with_next_token_probs(probs: dict[int, float]):
    model = lookup_model({})
    with torch.no_grad():  # the final RMSNorm turns the one-hot e_K into sqrt(V) e_K
        column = torch.full((V,), -30.0)
        for token, p in probs.items():
            column[token] = math.log(p)
        model.lm_head.weight[:, K] = column / math.sqrt(V)
    return model


def frequencies(model, **kw):
    out = relay_ref.generate(model, [[K]] * ROWS, 1, temperature=1.0, seed=0, **kw)
    return torch.bincount(torch.tensor([row[0] for row in out]), minlength=V).double() / ROWS


def test_temperature_one_samples_the_models_distribution():
    probs = {10: 0.3} | {t: 0.1 for t in range(11, 18)}
    freq = frequencies(model_with_next_token_probs(probs))
    for token, p in probs.items():
        assert abs(freq[token] - p) < 0.04, (token, freq[token].item(), p)


def test_top_p_keeps_the_token_that_crosses_the_mass_and_drops_the_rest():
    """p = (0.5, 0.3, 0.2), top_p = 0.6: 0.5 alone is short of 0.6, so 0.3 stays in; renormalised 5/8, 3/8."""
    freq = frequencies(model_with_next_token_probs({10: 0.5, 11: 0.3, 12: 0.2}), top_p=0.6)
    assert abs(freq[10] - 0.625) < 0.05 and abs(freq[11] - 0.375) < 0.05
    assert freq[12] == 0
