"""Tokenizer wrapper over `tokenizers.Tokenizer` (tokenizer.json): Qwen3's non-thinking chat prompt,
EOS ids and the command tokens `<call>`/`</call>` of decision D1 (paper §3.1, §4.1.1).

If the tokenizer lacks the command tokens they are added as special tokens right after its last token
(151669 and 151670 for Qwen3, inside the checkpoint's 151936 embedding rows); the relay hands ids, never
text, between the models (D3). `save` keeps the source tokenizer_config.json (Qwen3's chat template) and
lists the command tokens in it as special added tokens, so a saved student still chats in `transformers`.
"""

import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer as HFTokenizer

from .checkpoint import atomic_write, resolve_checkpoint
from .commands import CommandTokens
from .errors import UserError

CALL, END_CALL = "<call>", "</call>"
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class Tokenizer:
    def __init__(self, tok: HFTokenizer, source: str = "tokenizer.json", config: dict | None = None):
        self.tok, self.config = tok, config  # config: the source tokenizer_config.json
        missing = [t for t in (CALL, END_CALL) if tok.token_to_id(t) is None]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
        digits = []
        for d in range(10):
            ids = tok.encode(str(d), add_special_tokens=False).ids
            if len(ids) != 1 or tok.decode(ids) != str(d):
                raise UserError(f"{source}: digit {d} encodes to {ids}, not a single token of its own")
            digits.append(ids[0])
        self.commands = CommandTokens(tok.token_to_id(CALL), tok.token_to_id(END_CALL), tuple(digits))
        self.eos_ids = tuple(i for i in map(tok.token_to_id, EOS_TOKENS) if i is not None)
        if not self.eos_ids:
            raise UserError(f"{source}: has neither of the EOS tokens {EOS_TOKENS}")

    def __len__(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def chat_prompt(self, question: str) -> list[int]:
        """Qwen3 non-thinking chat format for one question (the empty think block closes thinking)."""
        return self.encode(f"<|im_start|>user\n{question}\n{INSTRUCTION}<|im_end|>\n"
                           "<|im_start|>assistant\n<think>\n\n</think>\n\n")

    def save(self, directory) -> None:
        directory = Path(directory)
        atomic_write(directory / "tokenizer.json", lambda p: self.tok.save(str(p)))
        config = dict(self.config or {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TOKENS[0],
                                      "pad_token": EOS_TOKENS[-1], "bos_token": None, "model_max_length": 131072})
        config["added_tokens_decoder"] = {**config.get("added_tokens_decoder", {}), **{
            str(self.tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                           "single_word": False, "special": True} for t in (CALL, END_CALL)}}
        atomic_write(directory / "tokenizer_config.json", lambda p: p.write_text(json.dumps(config, indent=2)))


def load_tokenizer(path_or_hub_id) -> Tokenizer:
    path = resolve_checkpoint(path_or_hub_id) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no tokenizer.json")
    config, tok = path.with_name("tokenizer_config.json"), None
    try:
        tok = HFTokenizer.from_file(str(path))
        config = json.loads(config.read_text()) if config.exists() else None
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        raise UserError(f"{config if tok else path}: not a valid tokenizer file ({' '.join(str(e).split())})") from None
    return Tokenizer(tok, source=str(path), config=config)
