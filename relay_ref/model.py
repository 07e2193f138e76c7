"""Qwen3 decoder in plain PyTorch, numerically matching Hugging Face `Qwen3ForCausalLM`.

Paper §4.1.1: students Qwen3-0.6B / 1.7B and teacher Qwen3-8B, all of this architecture. Module names
mirror the checkpoint keys (`model.layers.N.self_attn.q_proj.weight`, ...), so a state dict loads strictly.

Two ways to run it:
- `model(input_ids)`: a full causal forward without a cache, logits [B, T, vocab] (training, tests);
- `model(tokens, cache=..., positions=..., slots=..., kv_len=L)`: writes K/V for `tokens` [B, W] into a
  static `KVCache` at (slot, position) and attends over the first L cached positions of each row's slot.
  This path has fixed shapes and no host syncs, so it can be captured in a CUDA graph (see runner.py).
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class Qwen3Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 40960
    tie_word_embeddings: bool = False
    extras: dict = field(default_factory=dict, repr=False, compare=False)  # other keys, kept for saving

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "Qwen3Config":
        def refuse(why):
            raise ValueError(f"{source}: {why}; relay_ref implements dense Qwen3 only")
        if d.get("model_type", "qwen3") != "qwen3":
            refuse(f"model_type is {d.get('model_type')!r}, not 'qwen3'")
        if d.get("hidden_act", "silu") != "silu":
            refuse(f"hidden_act {d['hidden_act']!r} is not 'silu'")
        if d.get("attention_bias"):
            refuse("attention_bias is true")
        rope = d.get("rope_parameters") or {}
        if d.get("rope_scaling") or rope.get("rope_type", "default") != "default":
            refuse(f"rope scaling {d.get('rope_scaling') or rope} is set")
        if d.get("use_sliding_window") or any(t != "full_attention" for t in d.get("layer_types") or []):
            refuse("sliding-window attention is enabled")
        theta = d.get("rope_theta", rope.get("rope_theta"))
        required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "head_dim")
        if missing := [k for k in required if k not in d] + ["rope_theta"] * (theta is None):
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
        return cls(**{k: d[k] for k in required}, rope_theta=float(theta), rms_norm_eps=d.get("rms_norm_eps", 1e-6),
                   num_key_value_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
                   max_position_embeddings=d.get("max_position_embeddings", 40960),
                   tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                   extras={k: v for k, v in d.items() if k in ("bos_token_id", "eos_token_id", "pad_token_id")})

    @classmethod
    def from_file(cls, path: str | Path) -> "Qwen3Config":
        from .errors import UserError
        try:  # a config the user gave: a bad file or a refused architecture is a user error naming it
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), source=str(path))
        except (ValueError, AttributeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UserError(e if str(e).startswith(str(path)) else f"{path}: not a valid config.json ({e})") from None

    def to_dict(self) -> dict:
        """The HF config.json form, which `transformers` reads back."""
        d = asdict(self)
        return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu",
                "attention_bias": False, "attention_dropout": 0.0, "use_sliding_window": False,
                "sliding_window": None, "rope_scaling": None, **d.pop("extras"), **d,
                "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta}}


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # HF order: normalise in fp32, cast back, then scale (bit-parity in bf16 depends on it).
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: Qwen3Config, layer_idx: int):
        super().__init__()
        self.layer_idx, self.n_heads, self.n_kv, self.head_dim = (
            layer_idx, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim)
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)  # per head, before RoPE (Qwen3)
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, cache=None, positions=None, slots=None, kv_len=None):
        B, W, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, W, self.n_heads, self.head_dim))
        k = self.k_norm(self.k_proj(x).view(B, W, self.n_kv, self.head_dim))
        v = self.v_proj(x).view(B, W, self.n_kv, self.head_dim)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        mask = None
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v, slots, positions, kv_len)
            # A row attends to its own slot's keys at positions <= the query's position; anything
            # stale beyond the row's valid length sits at larger positions and is masked out.
            mask = (torch.arange(kv_len, device=x.device) <= positions.unsqueeze(-1)).unsqueeze(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=mask, is_causal=cache is None, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, W, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Qwen3Config, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache=None, positions=None, slots=None, kv_len=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, positions, slots, kv_len)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen3Model(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Qwen3ForCausalLM(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.config = cfg
        self.model = Qwen3Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight  # one Parameter, as in HF
        self.gradient_checkpointing = False
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float) / cfg.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @property
    def device(self):
        return self.lm_head.weight.device

    @property
    def dtype(self):
        return self.lm_head.weight.dtype

    def rope(self, positions, dtype):
        # Angles in fp32, cos/sin cast to the activation dtype: HF's convention.
        freqs = positions.unsqueeze(-1).float() * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def hidden_states(self, input_ids, cache=None, positions=None, slots=None, kv_len=None):
        """Final-norm hidden states [B, W, hidden]; the cache arguments as in the module docstring."""
        x = self.model.embed_tokens(input_ids)
        if positions is None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        cos, sin = self.rope(positions, x.dtype)
        for layer in self.model.layers:
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, cache, positions, slots, kv_len)
        return self.model.norm(x)

    def forward(self, input_ids, **cache_args):
        return self.lm_head(self.hidden_states(input_ids, **cache_args)).float()

    def save_pretrained(self, directory, tokenizer=None):
        from .checkpoint import save_pretrained
        save_pretrained(self, directory, tokenizer)
