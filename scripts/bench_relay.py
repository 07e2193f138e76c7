"""Relay speed: (a) the relay's overhead with no calls, (b) lazy catch-up versus re-prefilling the teacher
at every call (the released code's approach), (c) on CUDA, eager versus CUDA-graph decode, (d) continuous
batching versus fixed batches on a long-tailed workload.

    python scripts/bench_relay.py                      # (a) and (b) on CPU with small random models
    python scripts/bench_relay.py --device cuda --dtype bfloat16 --shapes paper   # adds (c)
    OMP_NUM_THREADS=1 python scripts/bench_relay.py --long-tail   # (d) only: 64 prompts, 8 slots, 1,024 tokens

(a) `relay_generate(teacher_free=True)` against `generate` with the same tokens banned: the same
    decode work, so the difference is the relay's host-side bookkeeping and its second runner.
(b) A scripted student (its decode work is real, its tokens follow a script) writes `period` text
    tokens, then `<call>k</call>`, again and again. The same outputs are produced twice: once with our
    teacher cache (lazy catch-up from the longest cached prefix), once with the teacher's cache wiped
    before every catch-up, so that it re-prefills its whole view at each call.
(d) Small random models sample at temperature 1 with the random caller (q 0.02, k 8); row r's EOS
    probability per token is 1 / L_r with L_r log-uniform on [10, 1024] (a thin runner wrapper replaces the
    model's sample by EOS with that probability, from the same counter-based hash as the sampler), so the
    lengths are long-tailed. The same 64 prompts run as fixed batches of 8 (a batch starts when the previous
    one has finished, as GRPO ran its calls of `rollout_batch` rows before) and with continuous batching, `slots=8`; the
    outputs must be identical (batch-invariant sampling).
"""
from __future__ import annotations

import argparse
import time

import torch

import relay_ref.relay as relay_module
from relay_ref.commands import CommandTokens, format_call
from relay_ref.generate import generate
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.runner import ModelRunner
from relay_ref.errors import ArgumentParser, run_script
from relay_ref.sampling import row_key, uniform

SHAPES = {
    "cpu": (dict(vocab_size=151936, hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64, tie_word_embeddings=True),
            dict(vocab_size=151936, hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=64, tie_word_embeddings=False)),
    "paper": (dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                   num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),   # Qwen3-0.6B shape
              dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                   num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)),  # Qwen3-8B shape
}
CMDS = CommandTokens(151669, 151670, tuple(range(15, 25)))
EOS = (151645,)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


class ScriptedStudent(ModelRunner):
    """Runs the real step (so its cost is real) but returns the next tokens of a fixed script per row."""
    script: list[int] = []

    def _scripted(self, slots, out):
        return torch.tensor([self.script[len(self.cache.ids[s]) - self.prompt_len] for s in slots])

    def extend(self, slots, views, rows=None):
        self.prompt_len = len(views[0])
        return self._scripted(slots, super().extend(slots, views, rows))

    def decode(self, slots, tokens, rows=None):
        return self._scripted(slots, super().decode(slots, tokens, rows))


class RePrefillTeacher(ModelRunner):
    def extend(self, slots, views, rows=None):
        for s in slots:
            self.cache.ids[s] = []  # forget everything: the whole view is forwarded again
        return super().extend(slots, views, rows)


def relay_with(student_cls, teacher_cls, *args, **kwargs):
    made = iter([student_cls, teacher_cls])
    original = relay_module.ModelRunner
    relay_module.ModelRunner = lambda *a, **k: next(made)(*a, **k)
    try:
        return relay_module.relay_generate(*args, **kwargs)
    finally:
        relay_module.ModelRunner = original


LONG_TAIL_EOS = 1999


class LongTailRunner(ModelRunner):
    """The real step and sample; then row r writes EOS instead with probability 1 / L_r (see (d))."""
    steps = live = 0

    def _eos(self, slots, rows, out):
        lengths = [10 * 102.4 ** uniform(row_key(99, 0, r), 0) for r in rows]  # log-uniform on [10, 1024]
        eos = [uniform(row_key(99, 1, r), len(self.cache.ids[s])) < 1 / L for r, s, L in zip(rows, slots, lengths)]
        return torch.where(torch.tensor(eos), LONG_TAIL_EOS, out.cpu())

    def extend(self, slots, views, rows=None):
        return self._eos(slots, rows, super().extend(slots, views, rows))

    def decode(self, slots, tokens, rows=None):
        LongTailRunner.steps, LongTailRunner.live = LongTailRunner.steps + 1, LongTailRunner.live + len(slots)
        return self._eos(slots, rows, super().decode(slots, tokens, rows))


LONG_TAIL_SHAPES = {  # (hidden, MLP, layers) of student and teacher; 4 query heads, 2 KV heads of 32
    "tiny": ((128, 384, 2), (256, 768, 4)),
    "larger": ((1024, 4096, 4), (1536, 6144, 4)),  # 56M / 122M parameters: more weight traffic per step
}


def long_tail(n_prompts=64, slots=8, max_new_tokens=1024, shape="tiny"):
    torch.manual_seed(0)
    small = dict(vocab_size=2048, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    student, teacher = (Qwen3ForCausalLM(Qwen3Config(hidden_size=h, intermediate_size=m, num_hidden_layers=n,
                                                     **small)).eval() for h, m, n in LONG_TAIL_SHAPES[shape])
    prompts = [torch.randint(100, 1990, (int(n),)).tolist() for n in torch.randint(16, 48, (n_prompts,))]
    run = dict(commands=CommandTokens(2000, 2001, tuple(range(15, 25))), max_new_tokens=max_new_tokens,
               eos_ids=(LONG_TAIL_EOS,), temperature=1.0, seed=0, teacher_free=True, random_calls=(0.02, 8),
               slots=slots)
    continuous = relay_module.admit
    fixed = lambda slot_of, n, waiting: [] if slot_of else continuous(slot_of, n, waiting)  # wait for the batch
    results = {}
    for name, admit in ((f"fixed batches of {slots}", fixed), ("continuous batching", continuous)):
        LongTailRunner.steps = LongTailRunner.live = 0
        relay_module.admit = admit
        try:
            out, sec = timed(lambda: relay_with(LongTailRunner, ModelRunner, student, teacher, prompts, **run),
                             torch.device("cpu"))
        finally:
            relay_module.admit = continuous
        results[name] = (out, sec, LongTailRunner.steps, LongTailRunner.live / (LongTailRunner.steps * slots))
    (a, *_), (b, *_) = results.values()
    assert a.tokens == b.tokens and a.authors == b.authors, "the schedule changed the outputs"
    lengths = sorted(map(len, b.tokens))
    ideal = sum(lengths) / slots + lengths[-1]
    q = lambda f: lengths[min(len(lengths) - 1, int(f * len(lengths)))]
    print(f"\n(d) long-tailed workload, {shape} models: {n_prompts} prompts, {slots} slots, {max_new_tokens} tokens, threads "
          f"{torch.get_num_threads()}; response lengths min {lengths[0]}, p10 {q(0.1)}, median {q(0.5)}, "
          f"p90 {q(0.9)}, max {lengths[-1]}, mean {sum(lengths) / len(lengths):.0f}, total {sum(lengths)}; "
          f"teacher share {sum(map(sum, b.teacher_mask)) / sum(lengths):.1%}; ideal decode steps "
          f"sum / slots + longest = {ideal:.0f}\n")
    print("| schedule | decode steps | vs ideal | slot utilisation | student / teacher forward tokens | seconds |"
          "\n|---|---|---|---|---|---|")
    for name, (out, sec, steps, util) in results.items():
        print(f"| {name} | {steps} | {steps / ideal - 1:+.1%} | {util:.1%} | {out.forward_tokens['student']} / "
              f"{out.forward_tokens['teacher']} | {sec:.1f} |")
    speedup = results[f"fixed batches of {slots}"][1] / results["continuous batching"][1]
    print(f"\nidentical outputs (asserted); wall-time speed-up {speedup:.2f}x")


def main():
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch intra-op CPU threads (default: torch's, one per core)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--shapes", default=None, choices=list(SHAPES), help="default: cpu on CPU, paper on CUDA")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--call-tokens", type=int, default=8, help="k in the scripted <call>k</call>")
    ap.add_argument("--periods", type=int, nargs="+", default=[200, 60, 20], help="student tokens between calls")
    ap.add_argument("--long-tail", action="store_true", help="run only (d), on CPU")
    ap.add_argument("--long-tail-shape", choices=list(LONG_TAIL_SHAPES), default="tiny", help="the models of (d)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.long_tail:
        return long_tail(shape=args.long_tail_shape)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    s_cfg, t_cfg = SHAPES[args.shapes or ("paper" if device.type == "cuda" else "cpu")]
    torch.manual_seed(0)
    student = Qwen3ForCausalLM(Qwen3Config(**s_cfg)).to(device, dtype).eval()
    teacher = Qwen3ForCausalLM(Qwen3Config(**t_cfg)).to(device, dtype).eval()
    prompts = torch.randint(100, 1000, (args.batch, args.prompt_len)).tolist()
    run = dict(commands=CMDS, max_new_tokens=args.new_tokens, eos_ids=EOS)
    print(f"device {device}, dtype {args.dtype}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"prompt {args.prompt_len}, {args.new_tokens} new tokens")

    print("\n(a) relay with no calls versus plain generate\n\n| impl | seconds | tokens/s |\n|---|---|---|")
    generate(student, prompts, 4)  # warm-up
    for name, fn in [("generate", lambda: generate(student, prompts, args.new_tokens, banned_ids=CMDS[:2])),
                     ("relay_generate (teacher-free)", lambda: relay_module.relay_generate(
                         student, teacher, prompts, teacher_free=True, **run).tokens)]:
        out, sec = timed(fn, device)
        print(f"| {name} | {sec:.2f} | {sum(map(len, out)) / sec:.1f} |")

    print("\n(b) lazy teacher catch-up versus re-prefilling the teacher at every call\n")
    print("| student tokens between calls | call ratio | teacher tokens forwarded (ours / re-prefill) "
          "| seconds (ours / re-prefill) | same outputs |\n|---|---|---|---|---|")
    for period in args.periods:
        cycle = [500] * period + format_call(args.call_tokens, CMDS)
        ScriptedStudent.script = (cycle * (args.new_tokens // len(cycle) + 2))[:args.new_tokens + 1]
        results = []
        for teacher_cls in (ModelRunner, RePrefillTeacher):
            out, sec = timed(lambda: relay_with(ScriptedStudent, teacher_cls, student, teacher, prompts, **run), device)
            results.append((out, sec))
        (ours, t_ours), (base, t_base) = results
        ratio = sum(map(sum, ours.teacher_mask)) / sum(map(len, ours.tokens))
        print(f"| {period} | {ratio:.1%} | {ours.forward_tokens['teacher']} / {base.forward_tokens['teacher']} "
              f"| {t_ours:.2f} / {t_base:.2f} | {ours.tokens == base.tokens} |")

    if device.type == "cuda":
        print("\n(c) decode tokens/s, eager versus CUDA graphs (relay, teacher-free student)\n")
        print("| batch | eager | CUDA graphs |\n|---|---|---|")
        for batch in (1, 8, 32):
            p = torch.randint(100, 1000, (batch, args.prompt_len)).tolist()
            row = []
            for graphs in (False, True):
                fn = lambda: relay_module.relay_generate(student, teacher, p, teacher_free=True, cuda_graphs=graphs, **run)
                fn()  # warm-up and capture
                out, sec = timed(fn, device)
                row.append(sum(map(len, out.tokens)) / sec)
            print(f"| {batch} | {row[0]:.1f} | {row[1]:.1f} |")


if __name__ == "__main__":
    run_script(main)
