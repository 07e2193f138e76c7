"""A student saved by relay_ref stays usable in `transformers` (issue: the saved tokenizer used to lose
Qwen3's chat template): the source tokenizer_config.json is kept whole, the command tokens are special added
tokens, and generation_config.json names both EOS ids, so `generate` stops where relay_ref stops."""
import json

import pytest
import torch
from hf_oracle import make_hf_model
from qwen3_tokenizer import qwen3_dir  # noqa: F401 (a fixture)

from relay_ref.checkpoint import load_model, save_pretrained
from relay_ref.generate import generate
from relay_ref.tokenizer import INSTRUCTION, load_tokenizer

transformers = pytest.importorskip("transformers")
ENDOFTEXT = 151643  # the second EOS: config.json's eos_token_id names only the first, <|im_end|>


@pytest.fixture(scope="module")
def saved(qwen3_dir, tmp_path_factory):
    """A tiny random student with Qwen3's 151936 rows and tokenizer, saved by relay_ref; its lm_head rows are
    permuted so that greedy decoding writes <|endoftext|> a few tokens in (random weights never would)."""
    tmp = tmp_path_factory.mktemp("export")
    make_hf_model(vocab_size=151936).save_pretrained(tmp / "hf")
    model, tok = load_model(tmp / "hf"), load_tokenizer(qwen3_dir)
    prompt = tok.chat_prompt("What is 2+3?")
    free = generate(model, [prompt], 12)[0]
    k = next(k for k in range(2, 12) if free[k] not in free[:k] and not set(tok.eos_ids) & set(free[:k + 1]))
    with torch.no_grad():  # swap two rows: the first k tokens keep their argmax, step k now picks ENDOFTEXT
        w = model.lm_head.weight
        w[[free[k], ENDOFTEXT]] = w[[ENDOFTEXT, free[k]]].clone()
    save_pretrained(model, tmp / "student", tok)
    return tmp / "student", model, tok, prompt, free[:k] + [ENDOFTEXT]


def test_saved_tokenizer_config_is_the_source_one_plus_the_command_tokens(saved, qwen3_dir):
    directory, *_ = saved
    source = json.loads((qwen3_dir / "tokenizer_config.json").read_text())
    config = json.loads((directory / "tokenizer_config.json").read_text())
    added = config["added_tokens_decoder"]
    assert {added[i]["content"]: added[i]["special"] for i in ("151669", "151670")} == {"<call>": True,
                                                                                       "</call>": True}
    for i in ("151669", "151670"):
        del added[i]
    assert config == source  # the chat template and every other field, whole


def test_transformers_renders_chat_prompt_and_the_command_tokens(saved):
    directory, _, tok, _, _ = saved
    hf = transformers.AutoTokenizer.from_pretrained(directory)
    for q in ("What is 2+3?", r"Find $\sqrt{x}$ if $x = 12^2$." + "\n\nThen say 😀."):
        out = hf.apply_chat_template([{"role": "user", "content": q + "\n" + INSTRUCTION}],
                                     add_generation_prompt=True, enable_thinking=False, tokenize=True)
        assert list(out["input_ids"] if hasattr(out, "keys") else out) == tok.chat_prompt(q)
    one, two = tok.commands.digit_ids[1], tok.commands.digit_ids[2]
    assert hf.encode("<call>12</call>", add_special_tokens=False) == [151669, one, two, 151670]
    assert hf.convert_ids_to_tokens([151669, 151670]) == ["<call>", "</call>"]


def test_transformers_greedy_generation_stops_at_the_same_eos_as_ours(saved):
    directory, model, tok, prompt, expected = saved
    ours = generate(model, [prompt], 12, eos_ids=tok.eos_ids)[0]
    assert ours == expected and ours[-1] == ENDOFTEXT
    assert json.loads((directory / "generation_config.json").read_text())["eos_token_id"] == [151645, ENDOFTEXT]
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    out = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=ENDOFTEXT)
    assert out[0, len(prompt):].tolist() == ours
