"""Show relay transcripts with the teacher's tokens and the command tokens highlighted, and plot training curves.

The paper shows collaborative decoding as a transcript in which the teacher's span stands out (Fig. 1, and the
case study of Fig. 4: the student writes `<call>300</call>`, the teacher searches, the student finishes). This
script renders such transcripts from token ids and their authors (TEXT, COMMAND, TEACHER; commands.py, D2),
never from re-tokenised text, so what is highlighted is exactly what each model wrote. Commands are split by
the D2 parser into executed calls (`<call>n</call>`, n in a tooltip) and void ones (shown struck through).
Each segment is decoded on its own, so a byte-level BPE character split across an author boundary (rare in
math text) would show as a replacement character.

Sources:
    python scripts/show.py --results runs/eval/results.json --n 5 --called-only    # evaluate.py's JSON
    python scripts/show.py --question "Compute 12*7+5." --html relay.html           # a live relay run
    python scripts/show.py --data data/toy/test.jsonl --n 10                         # live, N questions of a file
    python scripts/show.py --plot runs/toy/metrics.jsonl --png curves.png            # GRPO training curves

Output: the terminal (ANSI colours: teacher black on yellow, executed command bold magenta, void command
dim struck-through magenta), and with `--html FILE` a standalone HTML page with the same marking. The live run
uses greedy relay decoding (paper §4.2, D14) by default. `--plot` draws reward, accuracy, call ratio and KL per
step from the metrics log of relay_ref/grpo.py (paper §3.2; D6, D9); it needs matplotlib (`pip install
"relay_ref[plot]"`).
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `relay_ref` when run as a file from anywhere
from relay_ref.commands import COMMAND, TEACHER, split_response, teacher_view  # noqa: E402
from relay_ref.errors import ArgumentParser, UserError, run_script  # noqa: E402

RESET = "\x1b[0m"
ANSI = {"teacher": "\x1b[30;43m", "call": "\x1b[1;35m", "void": "\x1b[2;9;35m"}
LEGEND = {"teacher": "teacher tokens", "call": "command <call>n</call>", "void": "void command (calls nobody)"}
CSS = """body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
.transcript { border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }
.meta { color: #555; font-size: 0.9rem; } .ok { color: #070; } .bad { color: #b00; }
pre.response, pre.problem { white-space: pre-wrap; font-size: 0.95rem; }
span.teacher { background: #ffe36e; } span.call { color: #a0c; font-weight: bold; }
span.void { color: #a0c; opacity: 0.6; text-decoration: line-through; }"""


@dataclass
class Transcript:
    """One response: its token ids and, per token, its author (TEXT, COMMAND or TEACHER)."""
    token_ids: list[int]
    authors: list[int]
    problem: str = ""
    answer: str | None = None
    correct: bool | None = None
    title: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict, title: str = "") -> "Transcript":
        if "token_ids" not in record or "authors" not in record:
            raise ValueError("this record has no token_ids/authors (written before evaluate() kept them); "
                             "rerun scripts/evaluate.py")
        return cls(record["token_ids"], record["authors"], record.get("problem", ""), record.get("answer"),
                   record.get("correct"), title)

    @property
    def teacher_tokens(self) -> int:
        return sum(a == TEACHER for a in self.authors)


def segments(t: Transcript, commands) -> list[tuple[str, int, int, int | None]]:
    """(kind, start, end, n) covering the response; kind is text, teacher, call or void. The kinds come from
    the recorded authors; the D2 parser only splits COMMAND runs into commands and reads their n."""
    if len(t.token_ids) != len(t.authors):
        raise ValueError(f"{len(t.token_ids)} token ids but {len(t.authors)} authors")
    out = []
    for seg in split_response(t.token_ids, [a == TEACHER for a in t.authors], commands):
        author = t.authors[seg.start]
        if author == COMMAND:
            kind = seg.kind if seg.kind in ("call", "void") else "void"
        else:  # a command-like token the recorded run did not treat as a command (plain generation) is text
            kind = "teacher" if author == TEACHER else "text"
        out.append((kind, seg.start, seg.end, seg.n))
    return out


def _header(t: Transcript) -> str:
    n = len(t.token_ids)
    verdict = {True: "correct", False: "wrong", None: "unchecked"}[t.correct]
    return (f"{verdict}, call ratio {t.teacher_tokens / max(n, 1):.1%} "
            f"({t.teacher_tokens} of {n} response tokens by the teacher)")


def render_ansi(t: Transcript, decode, commands) -> str:
    """The response with ANSI colours; each line of a coloured segment is wrapped on its own so a background
    colour never bleeds to the end of the terminal line."""
    parts = []
    for kind, start, end, _ in segments(t, commands):
        text = decode(t.token_ids[start:end])
        if kind == "text":
            parts.append(text)
        else:
            parts.append("\n".join(ANSI[kind] + line + RESET if line else "" for line in text.split("\n")))
    return "".join(parts)


def render_terminal(t: Transcript, decode, commands) -> str:
    lines = [f"── {t.title} ── {_header(t)}".rstrip(), f"Q: {t.problem}"]
    if t.answer is not None:
        lines.append(f"gold: {t.answer}")
    return "\n".join(lines + [render_ansi(t, decode, commands), ""])


def legend_ansi() -> str:
    return "  ".join(ANSI[k] + v + RESET for k, v in LEGEND.items())


def render_html(t: Transcript, decode, commands) -> str:
    """The response as `<pre class="response">` with one `<span class="teacher|call|void">` per segment."""
    parts = []
    for kind, start, end, n in segments(t, commands):
        text = html.escape(decode(t.token_ids[start:end]))
        if kind == "text":
            parts.append(text)
        else:
            tip = f"the teacher wrote {end - start} tokens" if kind == "teacher" else \
                f"call for n = {n} tokens" if kind == "call" else "void command: calls nobody"
            parts.append(f'<span class="{kind}" title="{tip}">{text}</span>')
    return '<pre class="response">' + "".join(parts) + "</pre>"


SVG_FILL = {"text": "#222", "teacher": "#222", "call": "#a0c", "void": "#a0c"}


def svg_picture(transcripts: list[Transcript], decode, commands, width: int = 100) -> str:
    """The transcripts as one SVG image (for a README): monospace lines, the teacher's spans on a yellow
    background, commands in magenta. Lines longer than `width` characters are cut."""
    cw, lh, items, row = 8.4, 20, [], 0

    def put(col, text, kind="text", bold=False):
        text = text[:max(0, width - col)]
        if not text:
            return
        x, y = 10 + col * cw, 10 + row * lh
        if kind == "teacher":
            items.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{len(text) * cw:.1f}" height="{lh - 2}" fill="#ffe36e"/>')
        weight = ' font-weight="bold"' if bold or kind == "call" else ""
        weight += ' text-decoration="line-through" opacity="0.6"' if kind == "void" else ""
        items.append(f'<text x="{x:.1f}" y="{y + lh - 4}" fill="{SVG_FILL[kind]}"{weight} xml:space="preserve">'
                     f'{html.escape(text)}</text>')

    for t in transcripts:
        put(0, f"{t.title}: {_header(t)}", bold=True)
        row += 1
        put(0, f"Q: {t.problem}")
        row, col = row + 1, 0
        for kind, start, end, _ in segments(t, commands):
            for i, piece in enumerate(decode(t.token_ids[start:end]).split("\n")):
                if i:
                    row, col = row + 1, 0
                put(col, piece, kind)
                col += len(piece)
        row += 2
    legend = [("the teacher wrote this", "teacher"), ("<call>n</call>", "call"), ("void command", "void")]
    col = 0
    for text, kind in legend:
        put(col, text, kind)
        col += len(text) + 3
    height = 20 + (row + 1) * lh
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{20 + width * cw:.0f}" height="{height}" '
            f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(items) + "</svg>\n")


def html_page(transcripts: list[Transcript], decode, commands, title: str = "RelayLLM transcripts") -> str:
    legend = " ".join(f'<span class="{k}">{html.escape(v)}</span>' for k, v in LEGEND.items())
    body = []
    for t in transcripts:
        mark = {True: "ok", False: "bad"}.get(t.correct, "")
        gold = "" if t.answer is None else f" · gold answer <code>{html.escape(t.answer)}</code>"
        body.append(f'<div class="transcript"><h3>{html.escape(t.title)}</h3>'
                    f'<div class="meta {mark}">{html.escape(_header(t))}{gold}</div>'
                    f'<pre class="problem">{html.escape(t.problem)}</pre>{render_html(t, decode, commands)}</div>')
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>\n{CSS}\n</style></head>\n<body><h1>{html.escape(title)}</h1><p>{legend}</p>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------- sources

def resolve(path: str) -> str:
    """A relative path that is not under the working directory but is under the repository (the toy defaults)."""
    return str(ROOT / path) if not Path(path).exists() and (ROOT / path).exists() else str(path)


def from_results(path, mode="relay", benchmark=None, n=3, called_only=False) -> tuple[list[Transcript], dict]:
    """Transcripts from scripts/evaluate.py's JSON: the first n records of `mode` (on one or all benchmarks)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    results = data.get("results", {})
    if mode not in results:
        raise UserError(f"{path}: no mode {mode!r} (has {', '.join(results) or 'none'})")
    out = []
    for bench, res in results[mode].items():
        if benchmark is not None and bench != benchmark:
            continue
        for i, rec in enumerate(res.get("records", [])):
            if not called_only or rec.get("teacher_tokens", 0) > 0:
                out.append(Transcript.from_record(rec, title=f"{bench} / {mode} / record {i}"))
    if not out:
        where = f"mode {mode!r}" + (f" on {benchmark!r}" if benchmark else "")
        raise UserError(f"{path}: no responses in which the teacher wrote for {where}" if called_only else
                        f"{path}: no records for {where} (was it written with --no-records?)")
    return out[:n], data


def live(args, tok, questions) -> list[Transcript]:
    """Relay transcripts computed now, greedy by default (D14)."""
    import torch
    from relay_ref.answers import is_correct
    from relay_ref.checkpoint import load_model
    from relay_ref.relay import relay_generate

    if args.threads:
        torch.set_num_threads(args.threads)
    student, teacher = (load_model(resolve(p), device=args.device) for p in (args.student, args.teacher))
    out = relay_generate(student, teacher, [tok.chat_prompt(q["problem"]) for q in questions],
                         commands=tok.commands, max_new_tokens=args.max_new_tokens, eos_ids=tok.eos_ids,
                         temperature=args.temperature, seed=args.seed, student_vocab_limit=len(tok),
                         teacher_vocab_limit=len(tok))
    transcripts = []
    for i, (q, ids, authors) in enumerate(zip(questions, out.tokens, out.authors)):
        gold = q.get("answer")
        transcripts.append(Transcript(ids, authors, q["problem"], gold,
                                      # D13 on the text without command tokens, as evaluate reads it
                                      None if gold is None else is_correct(tok.decode(teacher_view(ids, authors)), gold),
                                      title=f"live relay / question {i}"))
    return transcripts


# ---------------------------------------------------------------- training curves

PLOT_KEYS = (("reward", "mean reward"), ("accuracy", "accuracy"), ("call_ratio", "call ratio ρ (D6)"),
             ("kl", "KL to the warm-up model (k3)"))


def read_metrics(path) -> list[dict]:
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    if not rows:
        raise ValueError(f"{path}: no metrics lines")
    return rows


def plot_metrics(metrics_path, png_path) -> Path:
    """Reward, accuracy, call ratio and KL per GRPO step, one panel each, saved as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib (or pip install -e \".[plot]\")") from None
    rows = read_metrics(metrics_path)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for ax, (key, label) in zip(axes.flat, PLOT_KEYS):
        pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows) if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 50 else None)
        else:
            ax.text(0.5, 0.5, f"no '{key}' in the log", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("GRPO step")
    fig.suptitle(f"GRPO training curves: {Path(metrics_path)}")
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path


# ---------------------------------------------------------------- command line

def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("transcripts from scripts/evaluate.py's JSON")
    src.add_argument("--results", type=Path, help="the JSON written by scripts/evaluate.py --out")
    src.add_argument("--mode", default="relay", help="which run's records (default relay)")
    src.add_argument("--benchmark", help="only this benchmark's records (default all)")
    src.add_argument("--called-only", action="store_true", help="only responses in which the teacher wrote")
    run = ap.add_argument_group("transcripts from a live relay run")
    run.add_argument("--question", action="append", help="a question (repeatable)")
    run.add_argument("--data", type=Path, help="JSON lines with problem/answer: the first --n questions")
    run.add_argument("--student", default="weights/toy/relay-student", help="relay student dir or hub id")
    run.add_argument("--teacher", default="weights/toy/teacher", help="teacher dir or hub id")
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="cpu")
    run.add_argument("--threads", type=int, help="torch intra-op threads")
    out = ap.add_argument_group("output")
    out.add_argument("--n", type=int, default=3, help="how many transcripts (default 3)")
    out.add_argument("--tokenizer", help="tokenizer dir (default: the results' relay student, else --student)")
    out.add_argument("--html", type=Path, help="also write a standalone HTML page here")
    out.add_argument("--svg", type=Path, help="also write the transcripts as one SVG picture here (for a README)")
    out.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    plot = ap.add_argument_group("training curves")
    plot.add_argument("--plot", type=Path, help="metrics.jsonl written by GRPO (relay_ref/grpo.py)")
    plot.add_argument("--png", type=Path, help="where to save the plot (default: next to the metrics)")
    args = ap.parse_args(argv)
    if not (args.results or args.question or args.data or args.plot):
        ap.error("give --results, --question, --data or --plot (see --help)")
    if args.png and not args.plot:
        ap.error("--png goes with --plot")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        try:
            png = plot_metrics(args.plot, args.png or args.plot.with_suffix(".png"))
        except (ImportError, ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        print(f"wrote {png}")
    if not (args.results or args.question or args.data):
        return
    from relay_ref.data import load_questions
    from relay_ref.tokenizer import load_tokenizer

    transcripts, tok_path = [], args.tokenizer
    if args.results:
        found, data = from_results(args.results, args.mode, args.benchmark, args.n, args.called_only)
        transcripts += found
        tok_path = tok_path or data.get("config", {}).get("student") or args.student
    tok = load_tokenizer(resolve(tok_path or args.student))
    questions = [{"problem": q} for q in args.question or []]
    questions += load_questions(resolve(str(args.data)))[:args.n] if args.data else []
    if questions:
        transcripts += live(args, tok, questions)
    color = args.color == "always" or args.color == "auto" and sys.stdout.isatty()
    emit = (lambda text: text) if color else strip_ansi
    print(emit("legend: " + legend_ansi()) + ("" if color else " (no colours: not a terminal; --color always)"))
    for t in transcripts:
        print(emit(render_terminal(t, tok.decode, tok.commands)))
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(html_page(transcripts, tok.decode, tok.commands), encoding="utf-8")
        print(f"wrote {args.html} ({len(transcripts)} transcripts)")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg_picture(transcripts, tok.decode, tok.commands), encoding="utf-8")
        print(f"wrote {args.svg} ({len(transcripts)} transcripts)")


def strip_ansi(s: str) -> str:
    for code in (*ANSI.values(), RESET):
        s = s.replace(code, "")
    return s


if __name__ == "__main__":
    run_script(main)
