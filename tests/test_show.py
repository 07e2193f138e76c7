"""scripts/show.py marks exactly what each model wrote (paper Fig. 1, Fig. 4; D2, D6), from token ids and authors."""
import json
import re
import sys
from html.parser import HTMLParser

import pytest
import torch

from relay_ref.commands import COMMAND, TEACHER, TEXT, CommandTokens
from relay_ref.errors import UserError
from scripts import show
from scripts.show import ANSI, RESET, Transcript, html_page, render_ansi, render_html, segments, strip_ansi

# Token i decodes to one character; the command tokens decode as themselves.
CMDS = CommandTokens(call_id=200, end_id=201, digit_ids=tuple(range(48, 58)))  # digit d is chr(48 + d)
NAMES = {200: "<call>", 201: "</call>"}


def decode(ids):
    return "".join(NAMES.get(i, chr(i)) for i in ids)


def ids_of(text):
    return [ord(c) for c in text]


def relay_transcript():
    """`2+3=` <call>2</call> teacher `5\\n` student `So <b>5</b>` then a void `<call></call>` and `!`."""
    parts = [(ids_of("2+3="), TEXT), ([200, 50, 201], COMMAND), (ids_of("5\n"), TEACHER),
             (ids_of("So <b>5</b> & "), TEXT), ([200, 201], COMMAND), (ids_of("ok\nyes"), TEACHER), (ids_of("!"), TEXT)]
    ids = [i for p, _ in parts for i in p]
    authors = [a for p, a in parts for _ in p]
    return Transcript(ids, authors, problem="What is 2+3?", answer="5", correct=True, title="t")


class Spans(HTMLParser):
    """Text of the response, with the class of the span each character sits in ('' outside any span)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_response, self.stack, self.chars, self.titles = False, [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "pre" and attrs.get("class") == "response":
            self.in_response = True
        elif tag == "span" and self.in_response:
            self.stack.append(attrs["class"])
            self.titles.append((attrs["class"], attrs.get("title", "")))

    def handle_endtag(self, tag):
        if tag == "pre":
            self.in_response = False
        elif tag == "span" and self.in_response:
            self.stack.pop()

    def handle_data(self, data):
        if self.in_response:
            self.chars += [(c, self.stack[-1] if self.stack else "") for c in data]


def runs(labelled, kind):
    """The maximal runs of characters labelled `kind`."""
    out, cur = [], ""
    for c, k in labelled + [("", None)]:
        if k == kind:
            cur += c
        elif cur:
            out, cur = out + [cur], ""
    return out


def test_html_marks_exactly_the_teachers_tokens():
    t = relay_transcript()
    p = Spans()
    p.feed(render_html(t, decode, CMDS))
    assert "".join(c for c, _ in p.chars) == decode(t.token_ids)  # nothing lost or added, entities undone
    assert runs(p.chars, "teacher") == ["5\n", "ok\nyes"]
    teacher_text = "".join(c for c, k in p.chars if k == "teacher")
    assert teacher_text == decode([i for i, a in zip(t.token_ids, t.authors) if a == TEACHER])


def test_html_highlights_executed_and_void_commands_apart():
    p = Spans()
    p.feed(render_html(relay_transcript(), decode, CMDS))
    assert runs(p.chars, "call") == ["<call>2</call>"]
    assert runs(p.chars, "void") == ["<call></call>"]
    assert ("call", "call for n = 2 tokens") in p.titles
    assert runs(p.chars, "") == ["2+3=", "So <b>5</b> & ", "!"]


def test_the_html_page_is_standalone_and_escapes_model_text():
    page = html_page([relay_transcript()], decode, CMDS, title="demo <1>")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "http" not in page and "<link" not in page
    assert "So &lt;b&gt;5&lt;/b&gt; &amp; " in page and "demo &lt;1&gt;" in page
    assert "call ratio 25.0% (8 of 32 response tokens by the teacher)" in page


def styled_chars(ansi: str):
    """(character, active ANSI code) for every printed character."""
    out, style = [], ""
    for piece in re.split(r"(\x1b\[[0-9;]*m)", ansi):
        if piece.startswith("\x1b["):
            style = "" if piece == RESET else piece
        else:
            out += [(c, style) for c in piece]
    return out


def test_ansi_colours_exactly_the_teacher_text():
    t = relay_transcript()
    out = render_ansi(t, decode, CMDS)
    chars = styled_chars(out)
    assert "".join(c for c, _ in chars) == strip_ansi(out) == decode(t.token_ids)
    teacher = [c for c, s in chars if s == ANSI["teacher"]]
    assert "".join(teacher) == "5ok" + "yes"  # newlines are left uncoloured so the background never bleeds
    assert runs(chars, ANSI["call"]) == ["<call>2</call>"] and runs(chars, ANSI["void"]) == ["<call></call>"]
    assert all(s == "" for c, s in chars if c == "\n")
    assert out.count(ANSI["teacher"]) == out.count(RESET) - 2  # every coloured line is closed


def test_recorded_authors_decide_so_plain_generation_never_shows_a_call():
    ids = ids_of("a") + [200, 50, 201] + ids_of("b")
    t = Transcript(ids, [TEXT] * len(ids))  # e.g. the base student alone: nothing was executed
    assert [k for k, *_ in segments(t, CMDS)] == ["text"] * len(segments(t, CMDS))
    p = Spans()
    p.feed(render_html(t, decode, CMDS))
    assert p.titles == []


def test_mismatched_ids_and_authors_are_an_error():
    with pytest.raises(ValueError, match="3 token ids but 2 authors"):
        segments(Transcript([1, 2, 3], [TEXT, TEXT]), CMDS)


def test_records_without_token_ids_ask_for_a_rerun(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"results": {"relay": {"toy": {"records": [{"problem": "x", "response": "y"}]}}}}))
    with pytest.raises(ValueError, match="rerun scripts/evaluate.py"):
        show.from_results(path)


# ---------------------------------------------------------------- evaluate.py -> JSON -> show.py

def tiny_world(tmp_path):
    """A character-level Qwen3-style tokenizer and three tiny random models in Hugging Face layout."""
    from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

    from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
    from relay_ref.tokenizer import Tokenizer
    alphabet = "\n" + "".join(chr(c) for c in range(32, 127))
    hf = HFTokenizer(models.WordLevel(vocab={c: i for i, c in enumerate(alphabet)}, unk_token=None))
    hf.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    hf.decoder = decoders.Fuse()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in
                           ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<call>", "</call>")])
    tok = Tokenizer(hf)
    cfg = Qwen3Config(vocab_size=112, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512)
    for seed, name in enumerate(("student", "relay-student", "teacher")):
        torch.manual_seed(seed)
        Qwen3ForCausalLM(cfg).save_pretrained(tmp_path / name, tok)
    data = tmp_path / "q.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": "4"}\n')
    return data


def test_evaluate_json_renders_as_transcripts_with_token_level_authorship(tmp_path, capsys):
    from scripts import evaluate
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = tiny_world(tmp_path)
        out = tmp_path / "eval.json"
        evaluate.main(["--benchmarks", f"tiny={data}", "--student", str(tmp_path / "relay-student"),
                       "--base-student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                       "--max-new-tokens", "6", "--fixed-k", "2", "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr().out
    assert "| Method | tiny | Average | Avg. Call Ratio |" in printed and "| random-router |" in printed
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"student", "teacher", "relay", "teacher-free", "fixed", "random-caller"}
    teacher_run = result["results"]["teacher"]["tiny"]
    assert teacher_run["call_ratio"] == 1.0 and all(set(r["authors"]) == {TEACHER} for r in teacher_run["records"])

    page = tmp_path / "t.html"
    show.main(["--results", str(out), "--mode", "teacher", "--n", "2", "--html", str(page), "--color", "always"])
    printed = capsys.readouterr().out
    assert printed.count(ANSI["teacher"]) >= 2 and "teacher tokens" in printed
    p = Spans()
    p.feed(page.read_text())
    assert p.chars and all(k == "teacher" for c, k in p.chars if c != "\n")
    assert page.read_text().count('class="transcript"') == 2


# ---------------------------------------------------------------- training curves

def write_metrics(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "reward": 0.1 * s, "accuracy": 0.5, "call_ratio": 0.01 * s,
                                        "kl": 0.001 * s, "loss": 0.0}) + "\n" for s in range(5)))
    return path


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        show.plot_metrics(write_metrics(tmp_path), tmp_path / "c.png")
    with pytest.raises(UserError, match="needs matplotlib"):  # run_script: one line, exit 2
        show.main(["--plot", str(write_metrics(tmp_path))])


def test_plot_writes_a_png_of_the_training_curves(tmp_path):
    pytest.importorskip("matplotlib")
    png = show.plot_metrics(write_metrics(tmp_path), tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_metrics_line_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0}\n{oops\n')
    with pytest.raises(ValueError, match=r"m.jsonl:2: invalid JSON"):
        show.read_metrics(path)


def test_svg_picture_puts_the_yellow_background_under_exactly_the_teachers_text():
    import xml.etree.ElementTree as ET
    t = relay_transcript()
    root = ET.fromstring(show.svg_picture([t], decode, CMDS))
    ns = "{http://www.w3.org/2000/svg}"
    rects = [(float(r.get("x")), float(r.get("y"))) for r in root.iter(ns + "rect") if r.get("fill") == "#ffe36e"]
    texts = {(float(e.get("x")), float(e.get("y")) - 13): e.text for e in root.iter(ns + "text")}  # baseline 13 px below the rect top
    highlighted = [texts[xy] for xy in rects]
    assert highlighted[:-1] == ["5", "ok", "yes"]  # the teacher's spans, line by line (the last is the legend)
    assert highlighted[-1] == "the teacher wrote this"


def test_live_verdict_reads_the_answer_without_command_tokens(tmp_path, monkeypatch, capsys):
    """`\\box<call>2</call>ed{2}`: the text the student and teacher wrote answers 2, so the verdict is correct."""
    import relay_ref.relay
    from relay_ref.relay import RelayOutput
    from relay_ref.tokenizer import load_tokenizer
    data = tiny_world(tmp_path)
    tok = load_tokenizer(tmp_path / "student")
    c = tok.commands
    parts = [(tok.encode("\\box"), TEXT), ([c.call_id, c.digit_ids[2], c.end_id], COMMAND), (tok.encode("ed"), TEACHER),
             (tok.encode("{2}"), TEXT)]
    ids, authors = [i for p, _ in parts for i in p], [a for p, a in parts for _ in p]

    def fake_relay(student, teacher, prompts, **kw):
        return RelayOutput([ids] * len(prompts), [authors] * len(prompts), [1] * len(prompts), {})
    monkeypatch.setattr(relay_ref.relay, "relay_generate", fake_relay)
    show.main(["--data", str(data), "--n", "1", "--student", str(tmp_path / "student"),
               "--teacher", str(tmp_path / "teacher"), "--color", "never"])
    printed = capsys.readouterr().out
    assert "live relay / question 0 ── correct" in printed, printed
