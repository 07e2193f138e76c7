"""Tiny random Qwen3 checkpoints made by `transformers` (the test-time oracle; relay_ref never imports it)."""
from __future__ import annotations

import torch

TINY = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=512, rms_norm_eps=1e-6)


def make_hf_model(seed=0, **overrides):
    """A transformers Qwen3ForCausalLM with weights drawn so that logits are far from flat.

    HF's default init (std 0.02, unit norms) gives near-ties that make greedy comparisons meaningless,
    so every weight, the norms included, is drawn with a larger spread."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = Qwen3Config(**{**TINY, "tie_word_embeddings": False, **overrides})
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 1.0 / p.shape[-1] ** 0.5 * (3.0 if "embed" in name or "lm_head" in name else 1.5))
    return model


def save_hf_model(tmp_path, name="hf", **kwargs):
    model = make_hf_model(**kwargs)
    path = tmp_path / name
    model.save_pretrained(path)
    return model, path
