"""The real Qwen3 tokenizer: `chat_prompt` is the official chat template's non-thinking prompt, token for
token (transformers renders the oracle); the command tokens land at 151669/151670; digits are single tokens."""
import pytest
from hypothesis import given, settings, strategies as st
from qwen3_tokenizer import qwen3_dir  # noqa: F401 (a fixture)

from relay_ref.tokenizer import INSTRUCTION, load_tokenizer

QUESTIONS = [
    "What is 2+3?",
    r"Let $f(x) = \frac{x^2-1}{x+1}$. Compute $\sum_{k=1}^{10} f(k)$ and write it as \boxed{...}.",
    "Trois élèves partagent 17 pommes. 小明有 5 个苹果。 Ünïcödé “quotes” … ∑ √2 ≈ 1.4 🙂",
    "First line.\n\nSecond paragraph after a blank line.\n\n\n   indented, trailing spaces   \n",
    "  leading spaces and a tab\there",
    "",
    "<think>is this thinking?</think> and <|im_end|> inside a question",
]


def official(hf, question):
    out = hf.apply_chat_template([{"role": "user", "content": question + "\n" + INSTRUCTION}],
                                 add_generation_prompt=True, enable_thinking=False, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.fixture(scope="module")
def both(qwen3_dir):
    transformers = pytest.importorskip("transformers")
    return load_tokenizer(qwen3_dir), transformers.AutoTokenizer.from_pretrained(qwen3_dir)


@pytest.mark.parametrize("question", QUESTIONS)
def test_chat_prompt_equals_the_official_non_thinking_template(both, question):
    ours, hf = both
    assert ours.chat_prompt(question) == official(hf, question)


@settings(max_examples=60, deadline=None)
@given(question=st.text(max_size=80))
def test_chat_prompt_equals_the_official_template_on_any_text(both, question):
    ours, hf = both
    assert ours.chat_prompt(question) == official(hf, question)


def test_command_tokens_follow_qwen3s_last_added_token(qwen3_dir):
    tok = load_tokenizer(qwen3_dir)
    assert tok.tok.token_to_id("</think>") == 151668
    assert (tok.commands.call_id, tok.commands.end_id) == (151669, 151670)
    assert len(tok) == 151671  # inside the checkpoints' 151936 embedding rows
    assert tok.eos_ids == (151645, 151643)  # <|im_end|>, <|endoftext|>


def test_every_digit_is_one_token_also_inside_numbers(qwen3_dir):
    tok = load_tokenizer(qwen3_dir)
    digits = tok.commands.digit_ids
    assert tok.encode("<call>1024</call>") == [151669, digits[1], digits[0], digits[2], digits[4], 151670]
    assert tok.encode("x=9876543210") == tok.encode("x=") + [digits[int(c)] for c in "9876543210"]
