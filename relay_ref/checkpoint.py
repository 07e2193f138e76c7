"""Hugging Face checkpoint layout: load from a local directory or a hub id, save so `transformers` loads it.

A checkpoint directory holds `config.json`, `model.safetensors` (or shards listed in
`model.safetensors.index.json`) and the tokenizer files. Loading is strict: a missing or unexpected
tensor, a wrong shape or a non-float dtype is an error naming the tensor and the file. Tied heads
(`tie_word_embeddings`) may omit `lm_head.weight`; if present it must equal the embedding.
Every file is written to a temporary name and renamed, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .model import Qwen3Config, Qwen3ForCausalLM

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def resolve_checkpoint(path_or_hub_id: str | Path) -> Path:
    """A local directory as is; anything else is a hub id fetched (and cached) by huggingface_hub."""
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(path_or_hub_id).startswith((".", "/", "~")) or str(path_or_hub_id).count("/") != 1:
        raise FileNotFoundError(f"{path_or_hub_id}: not a checkpoint directory (and not a hub id 'org/name')")
    from huggingface_hub import snapshot_download
    return Path(from_hub(str(path_or_hub_id), lambda: snapshot_download(str(path_or_hub_id), allow_patterns=HUB_FILES),
                         "pass a local checkpoint directory instead (scripts/download_weights.py makes one)"))


def from_hub(repo_id: str, download, instead: str):
    """download(); a hub failure becomes one line: the id, what went wrong, what to pass instead."""
    from huggingface_hub.errors import RepositoryNotFoundError
    try:
        return download()
    except Exception as e:  # offline mode, no network, no such repo: the hub client's many error types
        why = ("is not on the Hugging Face hub (or is gated)" if isinstance(e, RepositoryNotFoundError) else
               f"could not be fetched: the Hugging Face hub was unreachable ({type(e).__name__})")
        raise FileNotFoundError(f"{repo_id} {why}; {instead}") from None


def _tensor_files(directory: Path) -> dict[str, Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: directory / file for name, file in weight_map.items()}
    single = directory / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{directory}: no model.safetensors or model.safetensors.index.json")
    with safe_open(single, "pt") as f:
        return {name: single for name in f.keys()}


def load_model(path_or_hub_id, device="cpu", dtype=torch.float32) -> Qwen3ForCausalLM:
    directory = resolve_checkpoint(path_or_hub_id)
    cfg = Qwen3Config.from_file(directory / "config.json")
    with torch.device("meta"):
        model = Qwen3ForCausalLM(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    files = _tensor_files(directory)
    for name, file in files.items():
        if name not in expected:
            raise ValueError(f"{file}: unexpected tensor {name!r} (not a Qwen3ForCausalLM weight)")
    for name in expected:
        if name not in files and not (name == "lm_head.weight" and cfg.tie_word_embeddings):
            raise ValueError(f"{directory}: missing tensor {name!r}")
    state = {}
    for file in sorted(set(files.values())):
        if not file.exists():
            raise FileNotFoundError(f"{file}: shard listed in model.safetensors.index.json is missing")
        with safe_open(file, "pt", device=str(device)) as f:
            for name in f.keys():
                sl = f.get_slice(name)
                if tuple(sl.get_shape()) != expected[name]:
                    raise ValueError(f"{file}: tensor {name!r} has shape {tuple(sl.get_shape())}, "
                                     f"expected {expected[name]}")
                if sl.get_dtype() not in _DTYPES:
                    raise ValueError(f"{file}: tensor {name!r} has dtype {sl.get_dtype()}, expected a float dtype")
                state[name] = f.get_tensor(name).to(dtype)
    if cfg.tie_word_embeddings and "lm_head.weight" in state:
        if not torch.equal(state.pop("lm_head.weight"), state["model.embed_tokens.weight"]):
            raise ValueError(f"{files['lm_head.weight']}: tensor 'lm_head.weight' differs from "
                             "'model.embed_tokens.weight' but config.json says tie_word_embeddings")
    if cfg.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float, device=device)
                                               / cfg.head_dim))
    return model.eval()


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def save_pretrained(model: Qwen3ForCausalLM, directory, tokenizer=None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")  # HF convention: a tied head is not stored
    config = {**model.config.to_dict(), "dtype": str(model.dtype).removeprefix("torch.")}
    if tokenizer is not None:
        config.setdefault("eos_token_id", tokenizer.eos_ids[0])
        tokenizer.save(directory)
    atomic_write(directory / "config.json", lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
    atomic_write(directory / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
