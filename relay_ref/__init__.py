"""relay_ref: a compact pure-PyTorch reference implementation of RelayLLM (arXiv 2601.05167).

A small Qwen3 student decodes; when it emits `<call>n</call>` a large Qwen3 teacher writes the next n
tokens; then the student continues. PAPER_NOTES.md maps each section of the paper to the code.
"""
from .checkpoint import load_model, save_pretrained
from .commands import (COMMAND, TEACHER, TEXT, CommandParser, CommandTokens, call_ratio, format_call,
                       label_response, loss_mask, split_response, strip_commands, teacher_view)
from .evaluation import evaluate, random_router
from .generate import generate
from .grpo import GRPOConfig, train_grpo
from .model import Qwen3Config, Qwen3ForCausalLM
from .relay import RelayOutput, relay_generate
from .sft import train_sft
from .tokenizer import Tokenizer, load_tokenizer

__all__ = ["GRPOConfig", "evaluate", "random_router", "train_grpo", "train_sft", "COMMAND", "TEACHER", "TEXT", "CommandParser", "CommandTokens", "Qwen3Config", "Qwen3ForCausalLM",
           "RelayOutput", "Tokenizer", "call_ratio", "format_call", "generate", "label_response", "load_model",
           "load_tokenizer", "loss_mask", "relay_generate", "save_pretrained", "split_response", "strip_commands",
           "teacher_view"]
