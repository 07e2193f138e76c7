"""Parity with `transformers` for models built from a config, not loaded through checkpoint.py.

`checkpoint.load_model` recomputes the RoPE frequencies after loading, so the parity tests of
test_model.py would pass with a broken constructor. The toy world builds its students with
`Qwen3ForCausalLM(cfg)` (scripts/pretrain_toy.py), so this path is compared with the oracle too:
a random-init model of ours copied into transformers, and a transformers model copied into ours.
"""
import pytest
import torch
from hf_oracle import make_hf_model
from test_model import PROMPTS, VARIANTS, hf_greedy

import relay_ref
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM

IDS = torch.randint(0, 96, (3, 21), generator=torch.Generator().manual_seed(0))


def ours_from_hf(hf):
    ours = Qwen3ForCausalLM(Qwen3Config.from_dict(hf.config.to_dict())).eval()
    ours.load_state_dict(hf.state_dict())  # inv_freq is not in the state dict: the constructor's stays
    return ours


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_model_built_from_the_config_matches_transformers(variant):
    hf = make_hf_model(seed=2, **VARIANTS[variant])
    ours = ours_from_hf(hf)
    torch.testing.assert_close(ours.inv_freq, hf.model.rotary_emb.inv_freq.float(), rtol=1e-6, atol=0)
    with torch.no_grad():
        ref = hf(IDS).logits
        torch.testing.assert_close(ours(IDS), ref, atol=1e-4, rtol=0)
    assert relay_ref.generate(ours, PROMPTS, max_new_tokens=16) == [hf_greedy(hf, p, 16) for p in PROMPTS]


def test_our_random_init_copied_into_transformers_gives_the_same_logits():
    from transformers import Qwen3Config as HFConfig, Qwen3ForCausalLM as HFModel
    cfg = Qwen3Config(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32, rope_theta=10_000.0)
    torch.manual_seed(5)
    ours = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():  # spread the init so the logits are far from flat
        for name, p in ours.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, (3.0 if "embed" in name or "lm_head" in name else 1.5) / p.shape[-1] ** 0.5)
    hf = HFModel(HFConfig(**cfg.to_dict())).eval()
    hf.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours.inv_freq, hf.model.rotary_emb.inv_freq.float(), rtol=1e-6, atol=0)
    with torch.no_grad():
        ref = hf(IDS).logits
        assert ref.std() > 1.0
        torch.testing.assert_close(ours(IDS), ref, atol=1e-4, rtol=0)
