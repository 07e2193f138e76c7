"""relay_ref: a compact pure-PyTorch reference implementation of RelayLLM (arXiv 2601.05167)."""
from .checkpoint import load_model, save_pretrained
from .commands import CommandTokens
from .generate import generate
from .model import Qwen3Config, Qwen3ForCausalLM
from .tokenizer import Tokenizer, load_tokenizer

__all__ = ["CommandTokens", "Qwen3Config", "Qwen3ForCausalLM", "Tokenizer", "generate", "load_model",
           "load_tokenizer", "save_pretrained"]
