"""The memory plan (relay_ref/memory_plan.py; `train_grpo.py --dry-run`) counts what the real code allocates.

Weights, gradients, AdamW moments and the rollout KV caches are exact: the plan's bytes equal the sum of
numel * element_size of the tensors the code allocates, checked on small random configs. Activations are an
estimate; the part autograd keeps for backward is checked against the bytes of the tensors it saves (saved-tensor
hooks, CPU). The backward transient (one recomputed layer, one log-prob chunk's logits) is planned, not measured:
CPU allocations cannot be traced reliably here. Nothing here has run on a GPU.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import relay_ref.relay as relay_module
from relay_ref.commands import CommandTokens
from relay_ref.grpo import GRPOConfig, make_optimizer
from relay_ref.grpo_loss import token_logprobs
from relay_ref.errors import UserError
from relay_ref.memory_plan import activation_bytes, load_config, max_rollout_slots, memory_plan, n_params
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.runner import ModelRunner
from scripts import train_grpo

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GiB = 2**30


def small_config(hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, inter=48, vocab=64, tied=False):
    return Qwen3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                       tie_word_embeddings=tied)


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


configs = st.builds(small_config, hidden=st.sampled_from([16, 32]), layers=st.integers(1, 3),
                    kv_heads=st.sampled_from([1, 2, 4]), inter=st.sampled_from([24, 40]), tied=st.booleans())


@settings(max_examples=8, deadline=None)
@given(student_cfg=configs, teacher_cfg=configs)
def test_planned_resident_bytes_equal_the_tensors_after_one_optimizer_step(student_cfg, teacher_cfg):
    torch.manual_seed(0)
    policy = Qwen3ForCausalLM(student_cfg)  # float32 master weights, as train_grpo.py loads the policy
    ref = Qwen3ForCausalLM(student_cfg).to(torch.bfloat16)
    teacher = Qwen3ForCausalLM(teacher_cfg).to(torch.bfloat16)
    optimizer = make_optimizer(policy, GRPOConfig())
    token_logprobs(policy, torch.randint(0, 64, (2, 6))).sum().backward()
    optimizer.step()
    params = list(policy.parameters())  # a tied head is one Parameter
    moments = [s[k] for s in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]  # not the step counters
    plan = memory_plan(student_cfg, teacher_cfg, rollout_slots=1, max_len=8, micro_batch=1,
                       gradient_checkpointing=False)
    assert plan["weights"] == nbytes(params)
    assert plan["gradients"] == nbytes(p.grad for p in params)
    assert plan["adam_moments"] == nbytes(moments)
    assert plan["reference"] == nbytes(ref.parameters())
    assert plan["teacher"] == nbytes(teacher.parameters())
    assert plan["resident"] == sum(plan[k] for k in ("weights", "gradients", "adam_moments", "reference", "teacher"))


@pytest.mark.parametrize("autocast", [True, False])
def test_planned_kv_caches_equal_the_caches_one_relay_generate_call_allocates(monkeypatch, autocast):
    """The runners relay_generate makes (student fp32 policy, bf16 teacher): rows + 1 sink slot each, the longest
    prompt + max_new_tokens positions, in the autocast dtype under autocast, else each model's own."""
    student_cfg, teacher_cfg = small_config(vocab=80), small_config(hidden=48, layers=3, kv_heads=4, vocab=80)
    policy, teacher = Qwen3ForCausalLM(student_cfg), Qwen3ForCausalLM(teacher_cfg).to(torch.bfloat16)
    runners = []

    class Recorded(ModelRunner):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            runners.append(self)
    monkeypatch.setattr(relay_module, "ModelRunner", Recorded)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        relay_module.relay_generate(policy, teacher, prompts, commands=CommandTokens(70, 71, tuple(range(10, 20))),
                                    max_new_tokens=4, eos_ids=(0,), temperature=1.0, seed=0)
    allocated = nbytes(t for r in runners for t in r.cache.k + r.cache.v)
    plan = memory_plan(student_cfg, teacher_cfg, rollout_slots=3, max_len=5 + 4, micro_batch=1,
                       gradient_checkpointing=False, autocast_dtype=torch.bfloat16 if autocast else None)
    assert len(runners) == 2 and plan["kv_caches"] == allocated


def saved_for_backward(cfg, rows, length, checkpointing, autocast) -> int:
    """Bytes of the distinct storages autograd saves in one token_logprobs forward, parameters excluded."""
    model = Qwen3ForCausalLM(cfg).train()
    model.gradient_checkpointing = checkpointing
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    ids = torch.randint(0, cfg.vocab_size, (rows, length))
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast, cache_enabled=False), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        token_logprobs(model, ids, chunk=64)
    return sum(saved.values())


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("autocast", [True, False])
@pytest.mark.parametrize("cfg", [small_config(128, 3, 4, 2, 32, 384, 1000),
                                 small_config(256, 2, 8, 2, 64, 768, 3000, tied=True)], ids=["untied", "tied"])
def test_planned_saved_activations_are_within_25_percent_of_what_autograd_saves(cfg, autocast, checkpointing):
    measured = saved_for_backward(cfg, 2, 96, checkpointing, autocast)
    planned, _ = activation_bytes(cfg, 2, 96, checkpointing, torch.bfloat16 if autocast else torch.float32, 64)
    assert 0.8 <= planned / measured <= 1.25, (planned, measured)


def test_gradient_checkpointing_shrinks_the_planned_activations_at_the_paper_shapes():
    student = load_config(CONFIGS / "Qwen3-1.7B")
    on, off = (sum(activation_bytes(student, 1, 8704, ck, torch.bfloat16)) for ck in (True, False))
    assert on < off / 5


@settings(max_examples=5, deadline=None)
@given(memory=st.integers(30 * GiB, 200 * GiB))
def test_max_rollout_slots_is_the_largest_count_whose_caches_fit(memory):
    student, teacher = load_config(CONFIGS / "Qwen3-1.7B"), load_config(CONFIGS / "Qwen3-8B")
    args = dict(max_len=8704, micro_batch=1, gradient_checkpointing=True)
    n = max_rollout_slots(student, teacher, memory, **args)
    fits = lambda k: (lambda p: p["resident"] + p["kv_caches"] <= memory)(
        memory_plan(student, teacher, rollout_slots=k, **args))
    assert (n == 0 or fits(n)) and not fits(n + 1)


def test_the_fixture_configs_have_the_published_parameter_counts():
    # Qwen3-1.7B's safetensors header counts 1,720,574,976; Qwen3-0.6B 596,049,920 (tied heads count once).
    assert n_params(load_config(CONFIGS / "Qwen3-1.7B")) == 1_720_574_976
    assert n_params(load_config(CONFIGS / "Qwen3-0.6B")) == 596_049_920
    assert round(n_params(load_config(CONFIGS / "Qwen3-8B")) / 1e9, 1) == 8.2


def dry_run(capsys, *flags):
    with pytest.raises(SystemExit) as exit_:
        train_grpo.main(["--preset", "paper", "--student", str(CONFIGS / "Qwen3-1.7B"),
                         "--teacher", str(CONFIGS / "Qwen3-8B"), "--dry-run", *flags])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_dry_run_prints_the_table_and_fits_80gib_with_the_readme_flags(capsys):
    code, out, _ = dry_run(capsys, "--gpu-memory", "80GiB", "--gradient-checkpointing")
    assert code == 0 and "fits in 80.0 GiB" in out
    assert f"| policy weights, float32 master copy | {1_720_574_976 * 4 / GiB:.1f} GiB |" in out
    for row in ("gradients", "AdamW moments", "reference model (bfloat16", "teacher (bfloat16",
                "training activations", "**peak**"):
        assert row in out


def test_the_paper_preset_decodes_as_many_rows_as_fit_in_ninety_percent_of_the_gpu(capsys):
    code, out, _ = dry_run(capsys, "--gpu-memory", "80GiB", "--gradient-checkpointing")
    student, teacher = load_config(CONFIGS / "Qwen3-1.7B"), load_config(CONFIGS / "Qwen3-8B")
    slots = max_rollout_slots(student, teacher, 0.9 * 80 * GiB, max_len=8704, micro_batch=1,
                              gradient_checkpointing=True)
    assert code == 0 and 1 < slots < 256
    assert f"rollout KV caches of one relay_generate call: {slots} rows x 8,704 tokens" in out
    assert f"rollout slots: {slots} of the step's 256 rows" in out


def test_dry_run_names_the_flag_to_change_when_the_plan_does_not_fit(capsys):
    code, out, _ = dry_run(capsys, "--gpu-memory", "80GiB")  # no checkpointing: ~36 GiB of activations
    assert code == 1 and "does not fit" in out and "--gradient-checkpointing" in out
    code, out, _ = dry_run(capsys, "--gpu-memory", "40GiB", "--gradient-checkpointing")  # 44 GiB resident
    assert code == 1 and "--teacher-device" in out
    code, out, _ = dry_run(capsys, "--gpu-memory", "60GiB", "--gradient-checkpointing", "--rollout-slots", "16")
    student, teacher = load_config(CONFIGS / "Qwen3-1.7B"), load_config(CONFIGS / "Qwen3-8B")
    slots = max_rollout_slots(student, teacher, 60 * GiB, max_len=8704, micro_batch=1, gradient_checkpointing=True)
    assert code == 1 and 0 < slots < 16 and f"--rollout-slots {slots} " in out


def test_dry_run_without_a_memory_prints_the_plan_and_says_the_fit_was_not_checked(capsys):
    code, out, _ = dry_run(capsys, "--device", "cpu")
    assert code == 0 and "**peak**" in out and "not checked" in out


def test_dry_run_on_a_directory_without_config_json_fails_with_one_line(tmp_path):
    with pytest.raises(UserError, match="no config.json") as err:  # run_script: one stderr line, exit 2
        train_grpo.main(["--preset", "paper", "--student", str(tmp_path), "--teacher", str(CONFIGS / "Qwen3-8B"),
                         "--dry-run"])
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_the_readme_memory_table_is_the_dry_run_output(capsys):
    code, out, _ = dry_run(capsys, "--gpu-memory", "80GiB", "--gradient-checkpointing")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert code == 0 and len(table) == 12 and "\n".join(table) in readme
