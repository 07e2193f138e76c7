"""Run the whole RelayLLM method: warm-up SFT (paper §3.1), then GRPO with the difficulty-aware reward (§3.2).

    python scripts/train_grpo.py                    # the toy world on CPU, minutes (weights/toy, data/toy)
    python scripts/train_grpo.py --preset paper --train-data dapo_filtered.jsonl    # Qwen3-1.7B + 8B, one GPU

The warm-up runs first if its checkpoint does not exist yet (run_dir/warmup, or --warmup DIR). GRPO writes
run_dir/checkpoint (atomically, every --save-every steps; `--resume` continues a killed run to the same
result) and run_dir/metrics.jsonl (one line per step: reward, accuracy, call ratio, KL, loss, clip
fraction, ...). At the end it prints a table on the test set: student alone, teacher alone, the relay
student (accuracy and call ratio) and the relay student without the teacher.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from relay_ref.answers import checker_name
from relay_ref.benchmarks import REGISTRY, prepare
from relay_ref.checkpoint import check_checkpoint, load_model
from relay_ref.data import fit_context, load_questions, save_jsonl
from relay_ref.errors import ArgumentParser, UserError, run_script
from relay_ref.evaluation import evaluate
from relay_ref.grpo import REWARDS, GRPOConfig, NonFiniteLoss, train_grpo
from relay_ref.grpo_loss import ADVANTAGE_SCALES
from relay_ref.run_state import find_checkpoint
from relay_ref.memory_plan import load_config, max_rollout_slots, memory_plan
from relay_ref.sft import make_warmup_examples, train_sft
from relay_ref.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {
    # The toy world: a ~1M-parameter student and a larger teacher, both Qwen3, on CPU.
    "toy": dict(student=ROOT / "weights/toy/student", teacher=ROOT / "weights/toy/teacher",
                train_data=ROOT / "data/toy/train.jsonl", test_data=ROOT / "data/toy/test.jsonl",
                run_dir=ROOT / "runs/toy", device="cpu", dtype="float32", autocast=False,
                # A 1M-parameter student is poorly calibrated at T = 1 (the previous toy student: 26% vs 40%
                # greedy) and learns its own T = 1 noise in the warm-up, so the toy samples at 0.6. Its responses
                # are ~55 tokens, so warm-up spans are n = d (1-9), not d * 10^k. Each warm-up that trained its
                # body cost it 1-4 points alone, so the warm-up trains only the command tokens' rows, and puts the
                # commands where the student was unsure (top-1 < 0.5) so those rows learn where a call helps. In
                # GRPO the rows learn 100x faster than the body: calls are learned in 60 steps while the body
                # trains at an lr low enough to wear little of the student's own text, and beta 0.1 keeps it near
                # the warm-up's body, which is the base student's. The exploration reward is off (Table 3's
                # ablation): a Teacher-Unsolvable group's rewards are call ratios a few hundredths apart, Eq. 2
                # blows them up to +-1 advantages, and they pushed up the student's own wrong text in the
                # responses that called more; the warm-up already calls where the student is unsure, so
                # nothing needs exploring (PAPER_NOTES.md, docs/benchmarks.md §2).
                warmup_questions=2000, warmup_temperature=0.6, warmup_max_exponent=0, warmup_unsure_below=0.5,
                sft_epochs=2, sft_lr=1e-4, sft_batch=32, sft_command_lr_scale=100.0, sft_commands_only=True,
                sft_micro_batch=None,
                grpo=dict(steps=60, prompts_per_step=16, group_size=8, lr=3e-5, weight_decay=0.01, beta=0.1,
                          exploration=False,
                          temperature=0.6, updates_per_step=1, command_lr_scale=100.0, max_new_tokens=128,
                          rollout_slots=None, micro_batch=32, save_every=10)),  # None: all 128 rows at once
    # Paper Table 7: AdamW lr 1e-6, wd 1e-2, 32 prompts x G 8, T 1.0, beta 0.01, 8,192 response tokens.
    "paper": dict(student="Qwen/Qwen3-1.7B", teacher="Qwen/Qwen3-8B", train_data=None, test_data=None,
                  run_dir=ROOT / "runs/paper", device="cuda", dtype="bfloat16", autocast=True,
                  warmup_questions=30000, warmup_temperature=1.0, warmup_max_exponent=3, warmup_unsure_below=None,
                  sft_epochs=1, sft_lr=2e-5, sft_batch=32, sft_command_lr_scale=1.0, sft_commands_only=False,
                  sft_micro_batch=1,  # 32 sequences of up to 8,704 tokens: one at a time
                  grpo=dict(steps=None, prompts_per_step=32, group_size=8, lr=1e-6, weight_decay=0.01, beta=0.01,
                            # "fit": the most rows whose caches fit beside the resident models (memory_plan)
                            max_new_tokens=8192, rollout_slots="fit", micro_batch=1, save_every=10)),
}

CHOICES = {"reward": REWARDS, "advantage_scale": ADVANTAGE_SCALES}


def as_bool(s: str) -> bool:
    return s.lower() in ("1", "true", "yes")


def memory_size(s: str) -> int:
    """'80GiB' -> bytes (GiB/MiB: powers of 2; GB/MB: powers of 10)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(GiB|GB|MiB|MB)", s.strip(), re.IGNORECASE)
    if m is None:
        raise argparse.ArgumentTypeError(f"{s!r}: a size like 80GiB, 80GB or 512MiB")
    return int(float(m[1]) * {"gib": 2**30, "gb": 10**9, "mib": 2**20, "mb": 10**6}[m[2].lower()])


DRY_RUN_PROMPT_TOKENS = 512  # the plan's longest prompt; each more token costs one cache position per row


def plan_inputs(args, preset, grpo):
    """Student and teacher configs, memory_plan's keyword arguments for these flags, the device memory (or None)."""
    student, teacher = (load_config(getattr(args, role)) for role in ("student", "teacher"))
    kw = dict(max_len=DRY_RUN_PROMPT_TOKENS + grpo.get("max_new_tokens", GRPOConfig.max_new_tokens),
              micro_batch=grpo.get("micro_batch", GRPOConfig.micro_batch),
              gradient_checkpointing=args.gradient_checkpointing, frozen_dtype=getattr(torch, args.dtype),
              autocast_dtype=torch.bfloat16 if preset["autocast"] else None)
    memory = args.gpu_memory
    if memory is None and torch.device(args.device).type == "cuda" and torch.cuda.is_available():
        memory = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
    return student, teacher, kw, memory


FIT_SHARE = 0.9  # of the device memory: the allocator's fragmentation and kernel workspaces are not in the plan


def fit_rollout_slots(grpo, student, teacher, kw, memory) -> None:
    """The paper preset's rollout_slots="fit": the most rows whose KV caches fit beside the resident models
    in FIT_SHARE of the device memory (8 when the memory is not known)."""
    rows, fit = grpo["prompts_per_step"] * grpo["group_size"], memory and int(FIT_SHARE * memory)
    grpo["rollout_slots"] = 8 if memory is None else max(1, min(rows, max_rollout_slots(student, teacher, fit, **kw)))
    print(f"rollout slots: {grpo['rollout_slots']} of the step's {rows} rows decode at once " +
          ("(no GPU memory known: pass --gpu-memory or --rollout-slots)" if memory is None
           else f"(the most whose caches fit in {FIT_SHARE:.0%} of {memory / 2**30:.1f} GiB)"))


def dry_run(args, preset, grpo) -> int:
    """The README's memory table for these configs and flags; the fit against --gpu-memory or the GPU's own."""
    try:
        student, teacher, args_, memory = plan_inputs(args, preset, grpo)
    except (OSError, ValueError) as err:  # a missing config.json, a hub id that cannot be fetched, a bad field
        raise UserError(f"--dry-run: {str(err).splitlines()[0]}") from None
    if grpo.get("rollout_slots") == "fit":
        fit_rollout_slots(grpo, student, teacher, args_, memory)
    cfg = GRPOConfig(**{**grpo, "steps": grpo.get("steps") or 1})
    slots, max_len, gib = cfg.rollout_slots or cfg.prompts_per_step * cfg.group_size, \
        args_["max_len"], lambda b: f"{b / 2**30:.1f} GiB"
    plan, ck = memory_plan(student, teacher, rollout_slots=slots, **args_), args.gradient_checkpointing
    cache = "bfloat16 under autocast" if preset["autocast"] else f"float32 and {args.dtype}"
    rows = [("policy weights, float32 master copy", "weights"), ("its gradients (float32)", "gradients"),
            ("AdamW moments (2 x float32)", "adam_moments"), (f"reference model ({args.dtype}, frozen)", "reference"),
            (f"teacher ({args.dtype}, frozen)", "teacher"), ("**always resident**", "resident"),
            (f"rollout KV caches of one relay_generate call: {slots} rows x {max_len:,} tokens ({DRY_RUN_PROMPT_TOKENS} "
             f"prompt + {cfg.max_new_tokens:,} response), student + teacher, {cache}", "kv_caches"),
            (f"training activations, micro-batch {cfg.micro_batch} x {max_len:,} tokens, gradient checkpointing "
             f"{'on' if ck else 'off'} (an estimate: relay_ref/memory_plan.py)", "activations"),
            ("AdamW step scratch (one float32 copy of the weights)", "step_scratch"),
            ("**peak** = resident + the largest of the three above (caches are freed before the update)", "peak")]
    print(f"memory plan: student {args.student}, teacher {args.teacher}\n\n| what | size |\n|---|---|")
    print("\n".join(f"| {label} | {gib(plan[key])} |" for label, key in rows))
    if memory is None:
        print("\nno --gpu-memory and no GPU here: the fit was not checked")
        return 0
    if plan["peak"] <= memory:
        print(f"\nfits in {gib(memory)} with these flags ({gib(memory - plan['peak'])} to spare)")
        return 0
    advice = []
    if plan["resident"] + plan["step_scratch"] > memory:
        advice.append("the resident models alone do not fit: put the teacher on another GPU (--teacher-device) "
                      "or use a larger one")
    else:
        if plan["resident"] + plan["kv_caches"] > memory:
            advice.append(f"--rollout-slots {max_rollout_slots(student, teacher, memory, **args_)} (the most rows "
                          "whose caches fit)")
        if plan["resident"] + plan["activations"] > memory:
            advice.append("--gradient-checkpointing" if not ck else "--micro-batch 1" if cfg.micro_batch > 1
                          else "shorter responses (--max-new-tokens)")
    print(f"\ndoes not fit in {gib(memory)} (peak {gib(plan['peak'])}); change: " + "; ".join(advice))
    return 1


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="toy")
    ap.add_argument("--student", help="student checkpoint dir or hub id")
    ap.add_argument("--teacher", help="teacher checkpoint dir or hub id")
    ap.add_argument("--train-data", help="JSON lines with problem/answer (filtered, D12), or a dataset name "
                    f"({', '.join(REGISTRY)}; unfiltered, see scripts/prepare_data.py)")
    ap.add_argument("--test-data", type=Path, nargs="*", help="JSON lines for the final table")
    ap.add_argument("--run-dir", type=Path)
    ap.add_argument("--warmup", type=Path, help="warm-up checkpoint dir (made if missing; default run_dir/warmup)")
    ap.add_argument("--sft-lr", type=float, help="warm-up SFT peak learning rate (default: the preset's)")
    ap.add_argument("--sft-epochs", type=int, help="warm-up SFT epochs (default: the preset's)")
    ap.add_argument("--sft-command-lr-scale", type=float, help="warm-up: the <call>/</call> rows learn this much faster")
    ap.add_argument("--warmup-temperature", type=float, help="sampling temperature of the warm-up data (D11)")
    ap.add_argument("--warmup-max-exponent", type=int, help="warm-up n = d * 10^j, j in 0..this (D11: 3)")
    ap.add_argument("--warmup-unsure-below", type=lambda s: s if s == "none" else float(s), metavar="P|none",
                    help="warm-up commands only where the student's top-1 probability < P (none: anywhere, D11)")
    ap.add_argument("--sft-commands-only", type=as_bool, metavar="BOOL",
                    help="warm-up trains only the <call>/</call> rows (false: the whole student, as the paper)")
    ap.add_argument("--device")
    ap.add_argument("--teacher-device", help="the teacher, its cache and its sampling (default: --device); "
                    "only token ids cross between the devices")
    ap.add_argument("--warmup-questions", type=int, help="warm-up data from the first N training questions")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], help="teacher and reference dtype")
    ap.add_argument("--resume", action="store_true",
                    help="continue from run_dir/checkpoint (or the .tmp/.old a crash between its renames left)")
    ap.add_argument("--overwrite", action="store_true", help="start over, deleting a resumable run in run_dir")
    ap.add_argument("--truncate-prompts", action="store_true",
                    help="cut a question longer than the model's context instead of refusing the run")
    ap.add_argument("--export", type=Path, help="also save the final relay student here (HF layout)")
    ap.add_argument("--eval-limit", type=int, help="evaluate on the first N test questions only")
    ap.add_argument("--eval-max-new-tokens", type=int)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the memory plan from the two config.json files and "
                    "exit without loading weights: 0 if it fits (or no memory is known), 1 if it does not")
    ap.add_argument("--gpu-memory", type=memory_size, metavar="SIZE", help="device memory for --dry-run, e.g. 80GiB "
                    "(default: the GPU's own)")
    ap.add_argument("--threads", type=int, help="torch intra-op CPU threads (default: torch's, one per core)")
    for f in fields(GRPOConfig):  # every GRPO knob is a flag: --steps, --lr, --reward, --beta, ...
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool",) or isinstance(f.default, bool):
            ap.add_argument(flag, type=as_bool, metavar="BOOL")
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], None)
            ap.add_argument(flag, type=kind or (lambda s: None if s == "none" else float(s)), choices=CHOICES.get(f.name))
    args = ap.parse_args(argv)
    if args.resume and args.overwrite:
        ap.error("--resume and --overwrite exclude each other")
    for name in ("steps", "prompts_per_step", "rollout_slots", "micro_batch", "max_new_tokens", "save_every",
                 "eval_max_new_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    preset = PRESETS[args.preset]
    for key in ("student", "teacher", "train_data", "test_data", "run_dir", "device", "dtype"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if isinstance(args.test_data, (str, Path)):
        args.test_data = [args.test_data]
    args.warmup = args.warmup or Path(args.run_dir) / "warmup"
    args.teacher_device = args.teacher_device or args.device
    overrides = ("sft_lr", "sft_epochs", "sft_command_lr_scale", "sft_commands_only", "warmup_temperature",
                 "warmup_max_exponent", "warmup_unsure_below", "warmup_questions")
    preset = {**preset, **{k: getattr(args, k) for k in overrides if getattr(args, k) is not None}}
    if preset["warmup_unsure_below"] == "none":
        preset["warmup_unsure_below"] = None
    grpo = {**preset["grpo"], **{f.name: getattr(args, f.name) for f in fields(GRPOConfig)
                                 if getattr(args, f.name) is not None}}
    return args, preset, grpo


def usable_device(name: str, flag: str) -> torch.device:
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # a misspelt type; a CUDA device on a machine without one
        raise UserError(f"{flag} {name}: not a usable device here ({str(err).splitlines()[0]})")
    return device


def check_shared_vocabulary(student, teacher, tokenizer) -> None:
    """The relay hands token ids between the models (D3): one tokenizer, and both models have rows for its ids.
    student, teacher: `check_checkpoint`'s (directory, meta model, headers)."""
    for name, (directory, meta, _) in (("student", student), ("teacher", teacher)):
        if meta.config.vocab_size < len(tokenizer):
            raise UserError(f"{directory}: the {name} has {meta.config.vocab_size} embedding rows, fewer than the "
                            f"tokenizer's {len(tokenizer)} ids")
    ours, theirs = (d / "tokenizer.json" for d in (student[0], teacher[0]))
    if theirs.exists() and theirs.read_bytes() != ours.read_bytes():  # the same file: nothing to compare
        mine, theirs = tokenizer.tok.get_vocab(True), load_tokenizer(teacher[0]).tok.get_vocab(True)
        if mine != theirs:
            token = min(set(mine.items()) ^ set(theirs.items()), key=lambda kv: kv[1])[0]
            raise UserError(f"{teacher[0]}: the teacher's tokenizer differs from the student's {student[0]} (token "
                            f"{token!r}: id {mine.get(token)} vs {theirs.get(token)}); the relay needs one vocabulary")


def main(argv=None):
    args, preset, grpo = parse_args(argv)
    if args.dry_run:  # before any data or weights are read
        sys.exit(dry_run(args, preset, grpo))
    if grpo.get("rollout_slots") == "fit":
        fit_rollout_slots(grpo, *plan_inputs(args, preset, grpo))
    # Fail before any work: data files parse, every checkpoint the run reads is valid (headers only), the
    # prompts fit the context, and a resumable run is neither missing (--resume) nor overwritten by accident.
    if args.train_data is None:
        raise UserError(f"--train-data is required with --preset {args.preset} (JSON lines with problem/answer)")
    if args.threads:
        torch.set_num_threads(args.threads)
    questions = prepare(args.train_data)[0] if str(args.train_data) in REGISTRY else load_questions(args.train_data)
    tests = {Path(p).stem: load_questions(p)[:args.eval_limit] for p in (args.test_data or [])}
    device = usable_device(args.device, "--device")
    teacher_device = usable_device(args.teacher_device, "--teacher-device")
    if grpo.get("steps") is None:  # one epoch over the training questions (paper §4.3)
        grpo["steps"] = max(1, len(questions) // grpo["prompts_per_step"])
    cfg = GRPOConfig(**grpo)
    ckpt = Path(args.run_dir) / "checkpoint"
    found = find_checkpoint(ckpt)
    if args.resume and found is None:
        raise UserError(f"--resume: no complete checkpoint in {ckpt} (nor {ckpt.name}.tmp or {ckpt.name}.old)")
    if found and not args.resume and not args.overwrite:
        raise UserError(f"{found} holds a resumable run: pass --resume to continue it or --overwrite to start over")
    has_warmup = (Path(args.warmup) / "model.safetensors").exists()
    checked = [check_checkpoint(p, tokenizer=tok) for p, tok in [(args.student, True), (args.teacher, False)]
               + [(args.warmup, True)] * has_warmup + [(found, True)] * bool(found and args.resume)]
    context = min(meta.config.max_position_embeddings for _, meta, _ in checked)
    tokenizer = load_tokenizer(args.student)
    check_shared_vocabulary(checked[0], checked[1], tokenizer)
    questions = fit_context(questions, tokenizer, cfg.max_new_tokens, context, args.train_data, args.truncate_prompts)
    tests = {name: fit_context(qs, tokenizer, args.eval_max_new_tokens or cfg.max_new_tokens, context, name,
                               args.truncate_prompts) for name, qs in tests.items()}
    if args.overwrite:
        for d in (ckpt, ckpt.with_name("checkpoint.tmp"), ckpt.with_name("checkpoint.old")):
            shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    dtype = getattr(torch, args.dtype)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=preset["autocast"], cache_enabled=False)
    t0 = time.time()

    if not has_warmup:
        print(f"[1/3] warm-up SFT (D11) -> {args.warmup}")
        student = load_model(args.student, device=device)
        student.gradient_checkpointing = args.gradient_checkpointing
        with autocast:
            examples = make_warmup_examples(student, tokenizer, questions[:preset["warmup_questions"]],
                                            temperature=preset["warmup_temperature"],
                                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                            batch_size=cfg.rollout_slots or 64,  # rows decoding at once
                                            max_exponent=preset["warmup_max_exponent"],
                                            unsure_below=preset["warmup_unsure_below"])
            save_jsonl([{k: v for k, v in e.items()} for e in examples], Path(args.run_dir) / "warmup_data.jsonl")
            train_sft(student, examples, epochs=preset["sft_epochs"], lr=preset["sft_lr"],
                      batch_size=preset["sft_batch"], seed=cfg.seed, commands=tokenizer.commands,
                      command_lr_scale=preset["sft_command_lr_scale"], commands_only=preset["sft_commands_only"],
                      micro_batch=preset["sft_micro_batch"])
        student.save_pretrained(args.warmup, tokenizer)
        del examples, student  # the warm-up's memory is free before GRPO's models load
    else:
        print(f"[1/3] warm-up checkpoint found: {args.warmup}")

    teacher = load_model(args.teacher, device=teacher_device, dtype=dtype)  # after the warm-up: it needs no teacher
    print(f"[2/3] GRPO: {cfg.steps} steps x {cfg.prompts_per_step} prompts x G={cfg.group_size} -> {args.run_dir}")
    policy = load_model(args.warmup, device=device)  # float32 master weights: lr 1e-6 vanishes in bf16
    policy.gradient_checkpointing = args.gradient_checkpointing
    ref = load_model(args.warmup, device=device, dtype=dtype)
    try:
        with autocast:
            policy = train_grpo(policy, ref, teacher, tokenizer, questions, cfg, args.run_dir, resume=args.resume)
    except NonFiniteLoss as err:
        sys.exit(f"stopped: {err}")
    final = Path(args.run_dir) / "final"
    policy.save_pretrained(final, tokenizer)
    if args.export:
        shutil.rmtree(args.export, ignore_errors=True)
        shutil.copytree(final, args.export)
    print(f"training done in {time.time() - t0:.0f} s; relay student saved to {final}")

    if args.skip_eval or not tests:
        return
    print("[3/3] evaluation (greedy pass@1)")
    base = load_model(args.student, device=device, dtype=dtype)
    max_new = args.eval_max_new_tokens or cfg.max_new_tokens
    rows = [("student alone", "student", base), ("teacher alone", "teacher", base),
            ("relay student", "relay", policy), ("relay student, no teacher", "teacher-free", policy)]
    summary = {}
    with autocast:
        for name, bench in tests.items():
            for label, mode, student in rows:
                r = evaluate(mode, student, teacher, tokenizer, bench, max_new_tokens=max_new, desc=label,
                             max_call_tokens=cfg.max_call_tokens)
                summary[(name, label)] = {k: r[k] for k in ("accuracy", "call_ratio")}
    print("\n| benchmark | method | accuracy | call ratio |\n|---|---|---|---|")
    for (name, label), r in summary.items():
        ratio = "–" if label in ("student alone", "relay student, no teacher") else f"{r['call_ratio']:.2%}"
        print(f"| {name} | {label} | {r['accuracy']:.1%} | {ratio} |")
    print(f"answers checked by {checker_name()}")
    (Path(args.run_dir) / "eval.json").write_text(json.dumps({f"{n}/{l}": r for (n, l), r in summary.items()}, indent=2))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    run_script(main)
