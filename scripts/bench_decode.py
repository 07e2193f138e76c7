"""Decode speed: relay_ref versus transformers, side by side, same config, threads and dtype.

Reports tokens/s at batch 1 and 8 for two random-weight configs (the weights' values don't change the
speed): "small" (hidden 256, 4 layers, vocab 151936, tied) and a Qwen3-0.6B shape. Each result is also
given as a share of the memory-bandwidth roofline: the bytes of weights a decode step must read, over a
read bandwidth measured in the same run (a large matrix-vector product, the op decode is made of).

    python scripts/bench_decode.py                          # CPU, float32, both configs
    python scripts/bench_decode.py --device cuda --dtype bfloat16   # CUDA graphs on (see --eager)
"""
from __future__ import annotations

import argparse
import time

import torch

from relay_ref.generate import generate
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.runner import transposed_head
from relay_ref.errors import ArgumentParser, run_script

CONFIGS = {
    "small": dict(vocab_size=151936, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=True),
    "qwen3-0.6b": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def read_bandwidth(device, dtype, gib=0.5) -> float:
    """Bytes/s of a large matrix-vector product: the best case for streaming weights."""
    n = int(gib * 2**30 / torch.finfo(dtype).bits * 8) // 4096
    w, x = torch.randn(n, 4096, device=device, dtype=dtype), torch.randn(4096, 1, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        w @ x
        sync(device)
        best = min(best, time.perf_counter() - t)
    return w.numel() * w.element_size() / best


def gemv_chain(model, batch: int):
    """The decode step with every op but the matrix products removed: each Linear of the layers and the
    head once, on a [batch, in] input, the head in the layout the runner uses (transposed on CPU). Its
    tokens/s is what a decode step made of these kernels can reach on this machine."""
    mats = [m.weight for m in model.model.modules() if isinstance(m, torch.nn.Linear)]
    head = transposed_head(model) if model.device.type == "cpu" else model.lm_head.weight.t()
    xs = [torch.randn(batch, w.shape[1], device=w.device, dtype=w.dtype) for w in mats]
    xh = torch.randn(batch, head.shape[0], device=head.device, dtype=head.dtype)
    return lambda n: [([torch.nn.functional.linear(x, w) for x, w in zip(xs, mats)], xh @ head) for _ in range(n)]


def weight_bytes(model) -> int:
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    # The embedding lookup reads B rows, not the table; a tied table is still read whole by the head.
    if not model.config.tie_word_embeddings:
        total -= model.model.embed_tokens.weight.numel() * model.model.embed_tokens.weight.element_size()
    return total


def time_decode(fn, batch, new_tokens, device, repeats) -> float:
    """tokens/s of the decode phase: (N tokens - 1 token) run, which cancels the prefill."""
    def timed(n):
        best = float("inf")
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            fn(n)
            sync(device)
            best = min(best, time.perf_counter() - t)
        return best
    timed(2)  # warm-up
    return batch * (new_tokens - 1) / (timed(new_tokens) - timed(1))


def main():
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eager", action="store_true", help="no CUDA graphs on CUDA")
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers side")
    args = ap.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    bw = read_bandwidth(device, dtype)
    print(f"device {device}, dtype {args.dtype}, threads {torch.get_num_threads()}, "
          f"measured read bandwidth {bw / 1e9:.1f} GB/s")
    print("| config | batch | impl | tokens/s | roofline tokens/s (batch x bw / weight bytes) | share |")
    print("|---|---|---|---|---|---|")
    for name in args.configs:
        torch.manual_seed(0)
        cfg = Qwen3Config(**CONFIGS[name])
        ours = Qwen3ForCausalLM(cfg).to(device=device, dtype=dtype).eval()
        impls = {"relay_ref": ours}
        if not args.no_transformers:
            import transformers
            hf_cfg = transformers.Qwen3Config(**CONFIGS[name], rope_parameters={"rope_type": "default",
                                                                                  "rope_theta": 1e6})
            hf = transformers.Qwen3ForCausalLM(hf_cfg).to(device=device, dtype=dtype).eval()
            hf.load_state_dict(ours.state_dict())
            impls["transformers"] = hf
        step_bytes = weight_bytes(ours)
        for batch in args.batch:
            prompts = torch.randint(0, 1000, (batch, args.prompt_len)).tolist()
            for impl, model in [*impls.items(), ("GEMV chain (no other op)", ours)]:
                if impl.startswith("GEMV"):
                    fn = gemv_chain(ours, batch)
                elif impl == "relay_ref":
                    fn = lambda n: generate(model, prompts, n, cuda_graphs=False if args.eager else None)
                else:
                    ids = torch.tensor(prompts, device=device)
                    fn = lambda n: model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                                  pad_token_id=0)
                with torch.inference_mode():
                    tps = time_decode(fn, batch, args.new_tokens, device, args.repeats)
                roof = batch * bw / step_bytes
                print(f"| {name} | {batch} | {impl} | {tps:.1f} | {roof:.1f} | {tps / roof:.0%} |", flush=True)
        del impls, ours


if __name__ == "__main__":
    run_script(main)
