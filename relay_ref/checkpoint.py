"""Hugging Face checkpoint layout: load from a local directory or a hub id, save so `transformers` loads it.

A checkpoint directory holds `config.json`, `model.safetensors` (or shards listed in
`model.safetensors.index.json`) and the tokenizer files. Loading is strict: a missing or unexpected
tensor, a wrong shape, a dtype other than F32/F16/BF16/F64, a non-finite value, a truncated file or a bad
config.json is an error naming the tensor and the file (`check_checkpoint` reads only the headers). Tied heads
(`tie_word_embeddings`) may omit `lm_head.weight`; if present it must equal the embedding.
Every file is written to a temporary name and renamed, so a crash never leaves a half-written file.
"""

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import UserError
from .model import Qwen3Config, Qwen3ForCausalLM

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
_DTYPES = ("F32", "F16", "BF16", "F64")


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


def _headers(directory: Path) -> dict[str, tuple[Path, tuple, str]]:
    """{tensor name: (file, shape, dtype)} from the safetensors headers alone (no weight is read)."""
    index = directory / "model.safetensors.index.json"
    files = sorted({directory / f for f in json.loads(index.read_text())["weight_map"].values()}) \
        if index.exists() else [directory / "model.safetensors"]
    out = {}
    for file in files:  # a missing file (or shard listed in the index) is a FileNotFoundError naming it
        try:
            with safe_open(file, "pt") as f:
                out |= {n: (file, tuple(f.get_slice(n).get_shape()), f.get_slice(n).get_dtype()) for n in f.keys()}
        except SafetensorError as e:
            raise UserError(f"{file}: truncated or corrupt safetensors file ({e})") from None
    return out


def check_checkpoint(path_or_hub_id, tokenizer: bool = True):
    """The module docstring's checks from the headers alone, and (`tokenizer`) that tokenizer.json loads with
    its EOS and command tokens inside the embedding rows. Returns (directory, meta model, {name: (file, shape, dtype)})."""
    directory = resolve_checkpoint(path_or_hub_id)
    cfg = Qwen3Config.from_file(directory / "config.json")
    with torch.device("meta"):
        model = Qwen3ForCausalLM(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    headers = _headers(directory)
    for name, (file, shape, dtype) in headers.items():
        if name not in expected:
            raise UserError(f"{file}: unexpected tensor {name!r} (not a Qwen3ForCausalLM weight)")
        if shape != expected[name]:
            raise UserError(f"{file}: tensor {name!r} has shape {shape}, expected {expected[name]}")
        if dtype not in _DTYPES:
            raise UserError(f"{file}: tensor {name!r} has dtype {dtype}; accepted: {', '.join(_DTYPES)}")
    for name in expected:
        if name not in headers and not (name == "lm_head.weight" and cfg.tie_word_embeddings):
            raise UserError(f"{directory}: missing tensor {name!r}")
    if tokenizer:
        from .tokenizer import load_tokenizer  # tokenizer.py imports this module
        if max(ids := load_tokenizer(directory).commands[:2]) >= cfg.vocab_size:
            raise UserError(f"{directory}: command token ids {ids} lie outside the {cfg.vocab_size} embedding rows")
    return directory, model, headers


def load_model(path_or_hub_id, device="cpu", dtype=torch.float32) -> Qwen3ForCausalLM:
    """The checkpoint after `check_checkpoint` (without the tokenizer); a non-finite tensor is refused."""
    directory, model, headers = check_checkpoint(path_or_hub_id, tokenizer=False)
    cfg, state = model.config, {}
    for file in sorted({file for file, _, _ in headers.values()}):
        with safe_open(file, "pt", device=str(device)) as f:
            for name in f.keys():
                state[name] = f.get_tensor(name).to(dtype)
                if not torch.isfinite(state[name]).all():
                    raise UserError(f"{file}: tensor {name!r} holds non-finite values (NaN or inf)")
    if cfg.tie_word_embeddings:
        if "lm_head.weight" in state and not torch.equal(state.pop("lm_head.weight"), state["model.embed_tokens.weight"]):
            raise UserError(f"{headers['lm_head.weight'][0]}: tensor 'lm_head.weight' differs from "
                            "'model.embed_tokens.weight' but config.json says tie_word_embeddings")
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
        generation = {"eos_token_id": list(tokenizer.eos_ids)}  # transformers' generate stops at either EOS
        atomic_write(directory / "generation_config.json", lambda p: p.write_text(json.dumps(generation) + "\n"))
    atomic_write(directory / "config.json", lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
    atomic_write(directory / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
