"""One GPU check of what CPU tests cannot show (issue #17), with random weights (no downloads), in one table:

1. parity: a small config's logits on the device (float32 and bfloat16) against the float32 CPU model;
2. CUDA-graph decode against eager for 256 tokens at batch 1 and 8 (tokens identical; tokens/s of both), and
   the share of HBM bandwidth the graphed decode reaches (bytes read per step x steps / time / the device's
   peak) for the Qwen3-0.6B and Qwen3-1.7B shapes (goal: >= 60% at batch 1 for 0.6B);
3. the relay with a Qwen3-1.7B-shaped student and a Qwen3-8B-shaped teacher, graphs on: a scripted student
   (its decode work is real, its tokens follow a script of text and `<call>16</call>`) sets the calls;
4. one GRPO step at the paper's shapes (1.7B student, 8B teacher, G = 8, 2 prompts, 1,024-token responses,
   micro-batch 1, gradient checkpointing, bf16 autocast): peak memory next to the plan of
   relay_ref/memory_plan.py, and the time split between rollout and update.

    python scripts/gpu_check.py                                  # one H100/H200, <= 8 min; appends to docs/benchmarks.md
    python scripts/gpu_check.py --tiny --device cpu --out x.md   # the same code at tiny shapes on CPU, seconds

The table is printed and appended (with the date, device and torch version) under "## GPU check" in --out
(default docs/benchmarks.md; --tiny writes nowhere unless --out is given). A section that fails is reported
as FAILED in the table and the others still run; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

import relay_ref.relay as relay_module
from relay_ref.commands import CommandTokens, format_call
from relay_ref.errors import ArgumentParser, run_script
from relay_ref.grpo import GRPOConfig, make_optimizer, rollout, update
from relay_ref.memory_plan import load_config, memory_plan
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.runner import ModelRunner

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests/fixtures/configs"  # the published config.json files (shapes only)
COMMANDS = CommandTokens(151669, 151670, tuple(range(15, 25)))  # Qwen3's <call>, </call> and digit ids
EOS = (151645,)
TINY_VOCAB = 1024  # --tiny: the command tokens are its last two ids, EOS the one before
PEAK_BANDWIDTH = [("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12)]  # bytes/s, by name
SMALL = Qwen3Config(vocab_size=151936, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=True)
TINY = dict(vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16)


def shape(name: str, tiny: bool) -> Qwen3Config:
    """A published config's shape, or (tiny) a 2-layer model with its head tying."""
    cfg = load_config(CONFIGS / name)
    return Qwen3Config(**{**cfg.__dict__, **TINY}) if tiny else cfg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_model(cfg, device, dtype, seed=0):
    """Random weights made on the device in their dtype (an 8B model never exists in float32)."""
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return Qwen3ForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(default)


def decode_run(runner, prompts, n):
    """Greedy: prefill the prompts, then n - 1 decode steps; (tokens per row, seconds of the decode steps)."""
    slots = list(range(len(prompts)))
    for s in slots:
        runner.cache.ids[s] = []  # a rerun recomputes the prompt; captured graphs are kept
    out = [[t] for t in runner.extend(slots, prompts).tolist()]
    sync(runner.device)
    t0 = time.perf_counter()
    for _ in range(n - 1):
        for row, t in zip(out, runner.decode(slots, [row[-1] for row in out]).tolist()):
            row.append(t)
    sync(runner.device)
    return out, time.perf_counter() - t0


def step_bytes(model, batch, context) -> int:
    """Bytes one decode step must read: the weights (an untied embedding reads only `batch` rows) and each row's
    cached K/V over `context` positions."""
    cfg, weights = model.config, {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    embed = model.model.embed_tokens.weight
    total = sum(weights.values()) - (0 if cfg.tie_word_embeddings else embed.numel() * embed.element_size())
    return total + batch * context * 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2


def size(n_bytes) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def parity(args):
    """Logits of one batch and 32 greedy tokens: the model on the device against float32 on the CPU."""
    cpu = random_model(Qwen3Config(**{**SMALL.__dict__, **TINY}) if args.tiny else SMALL, "cpu", torch.float32)
    prompts = torch.randint(0, cpu.config.vocab_size - 3, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_logits = cpu(prompts)
    ref_tokens, _ = decode_run(ModelRunner(cpu, 2, 96), prompts.tolist(), 32)
    for dtype in (torch.float32, torch.bfloat16):
        model = copy.deepcopy(cpu).to(args.device, dtype)
        with torch.no_grad():
            diff = (model(prompts.to(args.device)).cpu() - ref_logits).abs().max().item()
        tokens, _ = decode_run(ModelRunner(model, 2, 96), prompts.tolist(), 32)
        same = sum(a == b for ra, rb in zip(tokens, ref_tokens) for a, b in zip(ra, rb))
        yield (f"parity: {str(dtype)[6:]} on {args.device.type} vs float32 CPU (small config, 2 x 64 tokens)",
               f"max abs logit difference {diff:.3g} (logits up to {ref_logits.abs().max():.3g}); "
               f"greedy tokens equal {same}/64", "")


def decode_speed(args):
    """CUDA graphs against eager at batch 1 and 8 for 256 tokens, and the graphed decode's bandwidth share."""
    peak = next((bw for key, bw in PEAK_BANDWIDTH if key in device_name(args.device)), None)
    n, prompt_len = (16, 8) if args.tiny else (256, 16)
    for name in ("Qwen3-0.6B", "Qwen3-1.7B"):
        model = random_model(shape(name, args.tiny), args.device, args.dtype)
        for batch in (1, 8):
            prompts = torch.randint(100, args.vocab - 3, (batch, prompt_len)).tolist()
            runs = {}
            for graphs in ((False, True) if args.device.type == "cuda" else (False,)):
                runner = ModelRunner(model, batch, prompt_len + n, cuda_graphs=graphs)
                decode_run(runner, prompts, n)  # warm-up: kernels chosen, graphs captured
                runs[graphs] = decode_run(runner, prompts, n)
            (eager, t_eager), (best, t_best) = runs[False], runs.get(True, runs[False])
            rate = lambda t: f"{batch * (n - 1) / t:,.0f} tokens/s"
            where = f"{name} shape, batch {batch}, {n} tokens, {args.dtype_name}"
            if args.device.type != "cuda":
                yield f"CUDA graphs vs eager: {where}", f"n/a on cpu (eager {rate(t_eager)})", "identical tokens"
                yield f"decode HBM bandwidth share: {where}", "n/a on cpu", ""
                continue
            yield (f"CUDA graphs vs eager: {where}", f"tokens identical: {best == eager}; graphs {rate(t_best)}, "
                   f"eager {rate(t_eager)}", "identical tokens")
            read = step_bytes(model, batch, prompt_len + n // 2) * (n - 1) / t_best
            share = f"{read / peak:.0%} of {peak / 1e12:.2f} TB/s" if peak else "n/a (peak of this device unknown)"
            yield (f"decode HBM bandwidth share: {where}", f"{read / 1e9:,.0f} GB/s read = {share}",
                   ">= 60% (0.6B, batch 1)" if name == "Qwen3-0.6B" and batch == 1 else "")
        del model


class ScriptedStudent(ModelRunner):
    """The real student step runs (its cost is real), but the next token is the script's: text, then calls."""
    script: list[int] = []

    def _scripted(self, slots, real):
        real.cpu()  # wait for the real step, as the relay's own .tolist() would
        return torch.tensor([self.script[len(self.cache.ids[s]) - self.prompt_len] for s in slots])

    def extend(self, slots, views, rows=None):
        self.prompt_len = len(views[0])  # the check's prompts all have one length
        return self._scripted(slots, super().extend(slots, views, rows))

    def decode(self, slots, tokens, rows=None):
        return self._scripted(slots, super().decode(slots, tokens, rows))


def scripted(fn, *a, **k):
    """Run fn with every relay_generate call's student runner scripted (its teacher runner stays the real one)."""
    made, original = itertools.cycle([ScriptedStudent, ModelRunner]), relay_module.ModelRunner
    relay_module.ModelRunner = lambda *ra, **rk: next(made)(*ra, **rk)
    try:
        return fn(*a, **k)
    finally:
        relay_module.ModelRunner = original


def script_for(n_tokens, commands, period=60, call=16):
    cycle = [500] * period + format_call(call, commands)
    return (cycle * (n_tokens // len(cycle) + 2))[:n_tokens + 1]


def relay(args):
    """The relay at the paper's shapes with graphs (and eager for the same outputs)."""
    student = random_model(shape("Qwen3-1.7B", args.tiny), args.device, args.dtype)
    teacher = random_model(shape("Qwen3-8B", args.tiny), args.device, args.dtype, seed=1)
    n, batch = (40, 2) if args.tiny else (256, 8)
    ScriptedStudent.script = script_for(n, args.commands, *((10, 4) if args.tiny else (60, 16)))
    prompts = torch.randint(100, args.vocab - 3, (batch, 32)).tolist()
    outs = {}
    for graphs in ((True, False) if args.device.type == "cuda" else (False,)):
        run = lambda: scripted(relay_module.relay_generate, student, teacher, prompts, commands=args.commands,
                               max_new_tokens=n, eos_ids=args.eos, cuda_graphs=graphs)
        run()  # warm-up and capture
        sync(args.device)
        t0 = time.perf_counter()
        out = run()
        sync(args.device)
        outs[graphs] = (out, time.perf_counter() - t0)
    out, sec = outs.get(True, outs[False])
    ratio = sum(map(sum, out.teacher_mask)) / sum(map(len, out.tokens))
    same = "n/a on cpu" if True not in outs else str(outs[True][0].tokens == outs[False][0].tokens)
    eager = f", eager {sum(map(len, outs[False][0].tokens)) / outs[False][1]:,.0f} tokens/s" if True in outs else ""
    yield (f"relay: 1.7B-shaped student + 8B-shaped teacher, {args.dtype_name}, batch {batch}, {n} tokens, "
           f"{'CUDA graphs' if True in outs else 'eager'}",
           f"{sum(out.calls) / batch:.1f} calls per row, call ratio {ratio:.1%}, "
           f"{sum(map(len, out.tokens)) / sec:,.0f} tokens/s{eager}; graphs = eager tokens: {same}", "")


class RandomTokenizer:
    """What grpo.rollout needs of a tokenizer, for random weights: fixed prompts, nothing is ever correct."""

    def __init__(self, prompt_len, args):
        self.prompt, self.commands, self.eos_ids = list(range(100, 100 + prompt_len)), args.commands, args.eos
        self.vocab = args.vocab

    def chat_prompt(self, question):
        return self.prompt

    def decode(self, ids):
        return ""

    def __len__(self):
        return self.vocab  # the ids the tokenizer can produce, command tokens included


def grpo_step(args):
    """Two GRPO steps (the second measured: gradients and AdamW moments exist from the first update on)."""
    s_cfg, t_cfg = shape("Qwen3-1.7B", args.tiny), shape("Qwen3-8B", args.tiny)
    G, prompt_len, response = (8, 32, 48) if args.tiny else (8, 128, 1024)
    cfg = GRPOConfig(steps=2, prompts_per_step=2, group_size=G, max_new_tokens=response, rollout_slots=2 * G,
                     micro_batch=1)
    policy = random_model(s_cfg, args.device, torch.float32)  # float32 master weights, as train_grpo.py
    policy.gradient_checkpointing = True
    ref = copy.deepcopy(policy).to(torch.bfloat16).requires_grad_(False)
    teacher = random_model(t_cfg, args.device, torch.bfloat16, seed=1).requires_grad_(False)
    optimizer, tokenizer = make_optimizer(policy, cfg), RandomTokenizer(prompt_len, args)
    ScriptedStudent.script = script_for(response, args.commands, *((10, 4) if args.tiny else (60, 16)))
    questions = [{"problem": "", "answer": "1"}] * 2
    cuda = args.device.type == "cuda"
    for step in range(2):
        if cuda:
            torch.cuda.reset_peak_memory_stats(args.device)
        with torch.autocast(args.device.type, dtype=torch.bfloat16, cache_enabled=False):
            sync(args.device)
            t0 = time.perf_counter()
            batch = scripted(rollout, policy, teacher, tokenizer, questions, cfg, step)
            sync(args.device)
            t1 = time.perf_counter()
            update(policy, ref, optimizer, batch, cfg, args.commands)
            sync(args.device)
            t2 = time.perf_counter()
    plan = memory_plan(s_cfg, t_cfg, rollout_slots=cfg.rollout_slots, max_len=prompt_len + response, micro_batch=1,
                       gradient_checkpointing=True)
    measured = (f"max_memory_allocated {size(torch.cuda.max_memory_allocated(args.device))} (reserved "
                f"{size(torch.cuda.max_memory_reserved(args.device))})") if cuda else "n/a on cpu"
    yield (f"GRPO step: 1.7B-shaped policy (float32) + bf16 reference, 8B-shaped teacher, G = {G}, 2 prompts, "
           f"{prompt_len} + {response} tokens, micro-batch 1, checkpointing, bf16 autocast",
           f"peak {measured}; plan {size(plan['peak'])} (resident {size(plan['resident'])}, caches "
           f"{size(plan['kv_caches'])}, activations {size(plan['activations'])}); call ratio "
           f"{batch['metrics']['call_ratio']:.1%}; rollout {t1 - t0:.1f} s, "
           f"update {t2 - t1:.1f} s", "peak within 10% of the plan")


def append(path: Path, table: str, header: str):
    """Under '## GPU check' (made at the end if missing), after the entries already there."""
    text = path.read_text() if path.exists() else ""
    if "\n## GPU check" not in "\n" + text:
        text = text.rstrip("\n") + "\n\n## GPU check\n\nRuns of `python scripts/gpu_check.py` (random weights).\n"
    start = ("\n" + text).index("\n## GPU check")
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end
    entry = f"\n### {header}\n\n{table}\n"
    path.write_text(text[:end].rstrip("\n") + "\n" + entry + text[end:])


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="2-layer models of the same vocabularies: seconds on a CPU")
    ap.add_argument("--out", type=Path, help="markdown file to append the table to (default: docs/benchmarks.md, "
                    "none with --tiny)")
    ap.add_argument("--only", nargs="+", choices=["parity", "decode", "relay", "grpo"], help="run only these")
    args = ap.parse_args(argv)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU here")
    args.dtype, args.dtype_name = torch.bfloat16, "bfloat16"
    args.vocab = TINY_VOCAB if args.tiny else 151671  # Qwen3's tokenizer with the two command tokens
    args.commands, args.eos = (CommandTokens(TINY_VOCAB - 2, TINY_VOCAB - 1, COMMANDS.digit_ids), (TINY_VOCAB - 3,)) \
        if args.tiny else (COMMANDS, EOS)
    out = args.out or (None if args.tiny else ROOT / "docs/benchmarks.md")
    sections = {"parity": parity, "decode": decode_speed, "relay": relay, "grpo": grpo_step}
    rows, failed, t_start = [], False, time.perf_counter()
    for name, section in sections.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            for row in section(args):
                rows.append(row)
                print(" | ".join(row), flush=True)
        except Exception as err:  # noqa: BLE001 - one failing section must not hide the others' results
            traceback.print_exc()
            rows.append((name, f"FAILED: {type(err).__name__}: {err}".replace("|", "/").replace("\n", " "), ""))
            failed = True
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
        if args.device.type == "cuda":
            torch.cuda.empty_cache()
    table = "| check | result | goal |\n|---|---|---|\n" + "\n".join(f"| {c} | {r} | {g} |" for c, r, g in rows)
    header = (f"{datetime.date.today()}, {device_name(args.device)}, torch {torch.__version__}"
              f"{', --tiny' if args.tiny else ''} ({time.perf_counter() - t_start:.0f} s)")
    print(f"\n{header}\n\n{table}")
    if out is not None:
        append(out, table, header)
        print(f"appended to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_script(main)
