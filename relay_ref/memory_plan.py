"""The memory plan of GRPO on one GPU from the two config.json files alone (paper §4.3; App. E Table 7's shapes).

Resident through `grpo.train_grpo`: the policy's float32 weights, gradients and AdamW moments, the frozen reference
and teacher in their dtype. Then one at a time: (a) one `relay_generate` call's KV caches, student and teacher,
(rows + 1 sink) x (longest prompt + max_new_tokens) x layers x (K, V) x KV heads x head_dim in the autocast dtype
(else each model's), freed on return; (b) one micro-batch's activations (`activation_bytes`, an estimate);
(c) AdamW's step scratch (CUDA's foreach step: one float32 weight copy). peak = resident + max(a, b, c)."""

from pathlib import Path

import torch

from .checkpoint import from_hub
from .model import Qwen3Config, Qwen3ForCausalLM


def load_config(path_or_hub_id) -> Qwen3Config:
    """config.json of a checkpoint directory or of a hub id (that file only, no weights)."""
    path, name = Path(path_or_hub_id).expanduser(), str(path_or_hub_id)
    if not path.exists() and name.count("/") == 1 and not name.startswith((".", "/", "~")):
        from huggingface_hub import hf_hub_download
        return Qwen3Config.from_file(from_hub(name, lambda: hf_hub_download(name, "config.json"),
                                              "pass a local directory holding its config.json"))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{name}: no config.json there (a checkpoint directory or a hub id 'org/name')")
    return Qwen3Config.from_file(path / "config.json")


def n_params(cfg) -> int:
    with torch.device("meta"):  # shapes only: nothing is allocated
        return sum(p.numel() for p in Qwen3ForCausalLM(cfg).parameters())  # a tied head counts once


def kv_cache_bytes(cfg, rows: int, max_len: int, dtype) -> int:
    return 2 * cfg.num_hidden_layers * (rows + 1) * max_len * cfg.num_key_value_heads * cfg.head_dim * dtype.itemsize


def activation_bytes(cfg, rows: int, length: int, checkpointing: bool, dtype, logit_chunk: int = 1024):
    """(saved, transient) bytes of one `token_logprobs` forward/backward on rows x length tokens in `dtype` (float32:
    no autocast). Per token and layer: float32 residual and norms 16h + 4(q+kv), in dtype c(5h + 3(q+kv) + 4I),
    plus (autocast) each layer's weights cast to dtype; per token 12h + 4 head_dim + 64 for the final norm, RoPE, ids.
    Checkpointing keeps each layer's float32 input (4h) and recomputes one layer at a time. Transient: that layer or
    one log-prob chunk's logits (chunk x vocab x 16 + the head cast). Assumes fused attention (no T^2 matrix)."""
    h, I, c, T = cfg.hidden_size, cfg.intermediate_size, dtype.itemsize, rows * length
    qkv = (cfg.num_attention_heads + cfg.num_key_value_heads) * cfg.head_dim
    # (c < 4): under autocast every Linear saves the cast copy of its weight for backward
    layer = T * (16 * h + 4 * qkv + c * (5 * h + 3 * qkv + 4 * I)) + (c < 4) * c * h * (2 * qkv + 3 * I)
    logits = rows * min(length, logit_chunk) * cfg.vocab_size * 16 + (c < 4) * c * h * cfg.vocab_size
    L, base = cfg.num_hidden_layers, T * (12 * h + 4 * cfg.head_dim + 64)
    return (base + L * 4 * h * T, max(layer, logits)) if checkpointing else (base + L * layer, logits)


def memory_plan(student, teacher, *, rollout_slots: int, max_len: int, micro_batch: int, gradient_checkpointing: bool,
                frozen_dtype=torch.bfloat16, autocast_dtype=torch.bfloat16) -> dict:
    """{name: bytes} for the README's table; autocast_dtype None: no autocast (float32 policy caches)."""
    P, fz = n_params(student), frozen_dtype.itemsize
    plan = {"weights": 4 * P, "gradients": 4 * P, "adam_moments": 8 * P, "reference": fz * P,
            "teacher": fz * n_params(teacher)}
    plan["resident"] = sum(plan.values())
    plan["kv_caches"] = (kv_cache_bytes(student, rollout_slots, max_len, autocast_dtype or torch.float32)
                         + kv_cache_bytes(teacher, rollout_slots, max_len, autocast_dtype or frozen_dtype))
    plan["activations"] = sum(activation_bytes(student, micro_batch, max_len, gradient_checkpointing,
                                               autocast_dtype or torch.float32))
    plan["step_scratch"] = 4 * P
    plan["peak"] = plan["resident"] + max(plan["kv_caches"], plan["activations"], plan["step_scratch"])
    return plan


def max_rollout_slots(student, teacher, memory: int, **plan_args) -> int:
    """The most rows one rollout call may decode at once with its caches next to the resident models (0: none)."""
    plan = memory_plan(student, teacher, rollout_slots=0, **plan_args)  # caches of the sink slot: one row's bytes
    return max(0, int((memory - plan["resident"]) // plan["kv_caches"]) - 1)
