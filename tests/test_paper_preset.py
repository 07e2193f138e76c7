"""`scripts/train_grpo.py --preset paper` in miniature on CPU: the paper's mechanics, only the sizes shrunk.

Two tiny random Qwen3 checkpoints of different sizes share the real Qwen3 tokenizer (151936 embedding
rows). The flags shrink steps, prompts, G, response length and the warm-up's question count; the preset keeps
the rest: bf16 teacher and reference, float32 master weights of the policy under bf16 autocast (on CPU
`torch.autocast("cpu", torch.bfloat16)`), micro-batch 1, D11's n = d * 10^j warm-up (j up to 3), and the
final table. `--gradient-checkpointing` and rollouts in fewer slots than the step's rows are the README's
one-GPU settings. The student is scripted to call (`<call>n</call>`, n in 1-4, after about every other text
token) so that the teacher writes in every rollout and the rows of a group differ.
Also: `--teacher-device`, and bad input (a teacher with another vocabulary, an unknown device) refused
before any work.
"""
import json

import pytest
import torch
from qwen3_tokenizer import unpack_qwen3_tokenizer
from safetensors.torch import load_file

from relay_ref.checkpoint import load_model, save_pretrained
from relay_ref.errors import UserError
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.tokenizer import INSTRUCTION, load_tokenizer
from scripts import train_grpo as script

VOCAB = 151936  # Qwen3's embedding rows
METRICS = {"step", "reward", "accuracy", "call_ratio", "calls_per_response", "response_tokens", "no_call_share",
           "no_call_accuracy", "frac_zero_std", "loss", "clip_frac", "kl", "grad_norm", "seconds"}
SHRINK = ["--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "16",
          "--warmup-questions", "3", "--rollout-slots", "2", "--eval-limit", "2", "--device", "cpu"]


def tiny_config(hidden, layers, tied):
    return Qwen3Config(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=tied)


def scripted_student(tok):
    """Random weights, except that the last token steers the next: text -> `<call>` (or text) -> a digit 1-4 ->
    `</call>`.

    Every text token's embedding leans on one direction u that the `<call>` head row reads; `<call>` and the
    digits have their own directions, read by the digits' and the `</call>` rows. The layers' outputs are
    scaled down so that the embedding dominates (each layer still trains)."""
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(tiny_config(32, 2, tied=False))
    u, v_call, v_digit = torch.linalg.qr(torch.randn(32, 3))[0].T * 32 ** 0.5
    call, end, digits = tok.commands.call_id, tok.commands.end_id, list(tok.commands.digit_ids[1:5])
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(0.1).add_(u)
        model.model.embed_tokens.weight[[call] + digits] = torch.stack([v_call] + [v_digit] * 4)
        model.lm_head.weight.mul_(0.05)
        # About half the text tokens are followed by a call (logit 12 against 151936 near-zero ones), so the
        # rows of a group differ in their call ratios and GRPO has advantages to follow.
        model.lm_head.weight[[call, end] + digits] = torch.stack([u * 12 / 32, v_digit] + [v_call] * 4)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(0.1)
            layer.mlp.down_proj.weight.mul_(0.1)
    return model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    tok = load_tokenizer(unpack_qwen3_tokenizer(root / "tokenizer"))
    save_pretrained(scripted_student(tok), root / "student", tok)
    torch.manual_seed(1)
    save_pretrained(Qwen3ForCausalLM(tiny_config(64, 3, tied=True)), root / "teacher", tok)  # 8B-like: bigger
    questions = [{"problem": p, "answer": a} for p, a in [
        ("What is $1 + 2$?", "3"), ("Compute $\\frac{12}{4}$.", "3"), ("How many sides has a hexagon?", "6"),
        ("What is $7 \\times 8$?", "56"), ("Solve $x + 5 = 9$.", "4"), ("What is $2^{10}$?", "1024"),
        ("What is $9 - 4$?", "5"), ("Compute $\\sqrt{49}$.", "7"), ("What is $3!$?", "6"), ("What is 10 / 2?", "5")]]
    for name, rows in (("train", questions[:6]), ("test", questions[6:])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in rows))
    return root, tok


def paper_argv(root, *extra):
    return ["--preset", "paper", "--student", str(root / "student"), "--teacher", str(root / "teacher"),
            "--train-data", str(root / "train.jsonl"), "--test-data", str(root / "test.jsonl"),
            "--run-dir", str(root / "run"), *SHRINK, *extra]


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_paper_preset_runs_in_miniature_and_resumes_as_a_no_op(world, monkeypatch, capsys):
    root, tok = world
    seen = {}
    real_grpo, real_warmup = script.train_grpo, script.make_warmup_examples

    def spy_warmup(*args, **kwargs):
        seen["max_exponent"] = kwargs["max_exponent"]
        return real_warmup(*args, **kwargs)

    def spy_grpo(policy, ref, teacher, tokenizer, questions, cfg, run_dir, resume=False):
        seen.update(dtypes=(policy.dtype, ref.dtype, teacher.dtype), cfg=cfg, teacher_device=teacher.device,
                    checkpointing=policy.gradient_checkpointing,
                    autocast=torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        before = [weights(m) for m in (ref, teacher)]
        out = real_grpo(policy, ref, teacher, tokenizer, questions, cfg, run_dir, resume=resume)
        seen["frozen"] = [all(torch.equal(w[k], m.state_dict()[k]) for k in w) for w, m in zip(before, (ref, teacher))]
        seen["policy_dtype_after"] = out.dtype
        return out

    monkeypatch.setattr(script, "train_grpo", spy_grpo)
    monkeypatch.setattr(script, "make_warmup_examples", spy_warmup)
    run = root / "run"
    script.main(paper_argv(root, "--gradient-checkpointing", "--teacher-device", "cpu",
                           "--export", str(root / "export")))
    out = capsys.readouterr().out

    # The mechanics the preset promises, as the run saw them.
    assert seen["dtypes"] == (torch.float32, torch.bfloat16, torch.bfloat16)
    assert seen["policy_dtype_after"] == torch.float32
    assert seen["autocast"] == torch.bfloat16 and seen["checkpointing"]
    assert seen["teacher_device"] == torch.device("cpu")
    cfg = seen["cfg"]
    assert cfg.micro_batch == 1 and cfg.rollout_slots < cfg.prompts_per_step * cfg.group_size
    assert seen["max_exponent"] == 3  # D11
    assert seen["frozen"] == [True, True]  # the reference and the teacher did not move

    # The warm-up checkpoint, the GRPO checkpoint and metrics.jsonl, with the documented keys.
    warmup = load_file(run / "warmup" / "model.safetensors")
    ckpt = load_file(run / "checkpoint" / "model.safetensors")
    assert all(v.dtype == torch.float32 for v in ckpt.values())
    assert any(not torch.equal(warmup[k], ckpt[k]) for k in ckpt)  # the policy moved
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [0, 1] and all(METRICS <= set(l) for l in lines)
    assert all(l["call_ratio"] > 0 for l in lines)  # the teacher wrote in the rollouts
    examples = [json.loads(l) for l in (run / "warmup_data.jsonl").read_text().splitlines()]
    assert len(examples) == 3 and any(tok.commands.call_id in e["response_ids"] for e in examples)  # D11: 0-3 each

    # The final table: four rows on the test set.
    for label in ("student alone", "teacher alone", "relay student", "relay student, no teacher"):
        assert f"| test | {label} |" in out
    assert set(json.loads((run / "eval.json").read_text())) == {
        f"test/{m}" for m in ("student alone", "teacher alone", "relay student", "relay student, no teacher")}

    # --resume of the finished run retrains nothing.
    files = {p: (run / p).read_bytes() for p in ("metrics.jsonl", "checkpoint/model.safetensors",
                                                 "warmup/model.safetensors")}
    script.main(paper_argv(root, "--gradient-checkpointing", "--resume", "--skip-eval"))
    assert "warm-up checkpoint found" in capsys.readouterr().out
    assert {p: (run / p).read_bytes() for p in files} == files
    assert load_file(run / "final" / "model.safetensors").keys() == ckpt.keys()
    assert all(torch.equal(v, ckpt[k]) for k, v in load_file(run / "final" / "model.safetensors").items())

    # The exported student loads here and in transformers, and chats with the official template.
    exported = load_model(root / "export")
    assert all(torch.equal(v, ckpt[k]) for k, v in exported.state_dict().items())
    transformers = pytest.importorskip("transformers")
    transformers.AutoModelForCausalLM.from_pretrained(root / "export")
    hf_tok = transformers.AutoTokenizer.from_pretrained(root / "export")
    q = "What is $1 + 2$?"
    ids = hf_tok.apply_chat_template([{"role": "user", "content": q + "\n" + INSTRUCTION}], add_generation_prompt=True,
                                     enable_thinking=False, tokenize=True)
    assert list(ids["input_ids"] if hasattr(ids, "keys") else ids) == tok.chat_prompt(q)


def test_teacher_device_defaults_to_the_students_device(world):
    root, _ = world
    assert script.parse_args(paper_argv(root))[0].teacher_device == "cpu"
    assert script.parse_args(paper_argv(root, "--teacher-device", "cuda:1"))[0].teacher_device == "cuda:1"


def bare_checkpoint(directory, vocab_size, tokenizer_dir=None):
    """A tiny valid checkpoint: the checks must refuse it before any weights are read (headers only)."""
    cfg = Qwen3Config(**{**tiny_config(16, 1, tied=True).__dict__, "vocab_size": vocab_size, "extras": {}})
    save_pretrained(Qwen3ForCausalLM(cfg), directory)
    if tokenizer_dir is not None:
        for f in tokenizer_dir.iterdir():
            (directory / f.name).write_bytes(f.read_bytes())


@pytest.mark.parametrize("case, message", [
    ("other tokenizer", "the teacher's tokenizer differs from the student's"),
    ("too few rows", "the teacher has 1000 embedding rows, fewer than the tokenizer's 151671 ids"),
    ("misspelt device", "--device cudaa: not a usable device"),
    ("absent GPU", "--device cuda:99: not a usable device"),
    ("absent teacher GPU", "--teacher-device cuda:99: not a usable device"),
])
def test_bad_input_is_refused_before_any_work(world, tmp_path, case, message):
    root, _ = world
    qwen3 = root / "tokenizer"
    bare_checkpoint(tmp_path / "student", VOCAB, qwen3)
    if case == "other tokenizer":  # Qwen3's vocabulary with two token ids swapped
        other = json.loads((qwen3 / "tokenizer.json").read_text())
        v = other["model"]["vocab"]
        v["hello"], v["world"] = v["world"], v["hello"]
        bare_checkpoint(tmp_path / "teacher", VOCAB)
        (tmp_path / "teacher" / "tokenizer.json").write_text(json.dumps(other))
    else:
        bare_checkpoint(tmp_path / "teacher", 1000 if case == "too few rows" else VOCAB, qwen3)
    device = {"misspelt device": ["--device", "cudaa"], "absent GPU": ["--device", "cuda:99"],
              "absent teacher GPU": ["--teacher-device", "cuda:99"]}.get(case, [])
    argv = ["--preset", "paper", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
            "--train-data", str(root / "train.jsonl"), "--run-dir", str(tmp_path / "run"), *SHRINK, *device]
    with pytest.raises(UserError) as err:  # run_script turns it into one stderr line and exit 2
        script.main(argv)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # nothing was done
