"""The tokenizer wrapper: Qwen3 chat prompt, EOS ids, and the command tokens of decision D1."""
import pytest
from tokenizers import Regex, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

import relay_ref
from relay_ref.tokenizer import Tokenizer

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def qwen_like_tokenizer(with_commands=False):
    """A byte-level BPE with Qwen3's added tokens (digits split one per token, as in Qwen)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = HFTokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(QWEN_SPECIALS + (["<call>", "</call>"] if with_commands else []))
    return tok


def test_command_tokens_are_added_right_after_the_last_token():
    hf = qwen_like_tokenizer()
    n = hf.get_vocab_size(with_added_tokens=True)
    tok = Tokenizer(hf)
    assert (tok.commands.call_id, tok.commands.end_id) == (n, n + 1)  # 151669, 151670 for Qwen3
    assert len(tok) == n + 2
    assert tok.encode("<call>30</call>") == [n, tok.commands.digit_ids[3], tok.commands.digit_ids[0], n + 1]


def test_existing_command_tokens_are_reused():
    hf = qwen_like_tokenizer(with_commands=True)
    tok = Tokenizer(hf)
    assert tok.commands.call_id == hf.token_to_id("<call>") and len(tok) == hf.get_vocab_size(True)


def test_chat_prompt_is_the_qwen3_non_thinking_format_and_round_trips():
    tok = Tokenizer(qwen_like_tokenizer())
    ids = tok.chat_prompt("What is 2+3?")
    assert tok.decode(ids) == ("<|im_start|>user\nWhat is 2+3?\nPlease reason step by step, and put your final "
                               "answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert ids[0] == tok.tok.token_to_id("<|im_start|>")  # no BOS is prepended


def test_eos_ids_are_im_end_then_endoftext():
    tok = Tokenizer(qwen_like_tokenizer())
    assert tok.eos_ids == (tok.tok.token_to_id("<|im_end|>"), tok.tok.token_to_id("<|endoftext|>"))


def test_saved_tokenizer_keeps_the_command_tokens(tmp_path):
    tok = Tokenizer(qwen_like_tokenizer())
    tok.save(tmp_path)
    again = relay_ref.load_tokenizer(tmp_path)
    assert again.commands == tok.commands and len(again) == len(tok)


def test_a_tokenizer_that_merges_digits_is_refused():
    hf = HFTokenizer(models.WordLevel(vocab={"12": 0, "[UNK]": 1}, unk_token="[UNK]"))
    hf.add_special_tokens(QWEN_SPECIALS)
    with pytest.raises(ValueError, match="digit 0"):
        Tokenizer(hf, source="x/tokenizer.json")


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        relay_ref.load_tokenizer(tmp_path)
