"""The relay sampler: a student and a teacher write one response together (paper §3.1; D2-D7).

Every row is independently in student mode, teacher mode or done. Each model keeps its own static KV
cache over its own view of the text: the student sees every token (its commands included, D5); the
teacher sees the prompt and the response without command tokens (D3), with its own dense positions.

One tick (qwen3-and-decoding.md §3.6):
1. the student decodes all live rows in lockstep, each consuming its row's latest token whoever wrote it,
   so it absorbs the teacher's tokens as they are written and handing control back costs no re-prefill;
   its sample is used (and fed to the D2 parser) only on rows in student mode;
2. rows that entered teacher mode catch the teacher up lazily from the longest prefix its cache holds
   (no token is forwarded twice), rows already in teacher mode decode one teacher token;
3. the host appends the tokens with their authors, parses the student's, counts the call's budget,
   checks EOS (a teacher EOS ends the response, D4) and switches modes.
The response budget counts every token, teacher tokens included (D7); n is clamped to what is left.

Modes for the paper's experiments: `teacher_free` bans the command tokens by a logit mask (§5.3),
`fixed_call_tokens=k` executes every well-formed command with n = k (§5.4), `max_calls` caps executed
calls per response (later well-formed commands are not executed), `teacher_temperature` (D4), and
`random_calls=(q, k)`: a token-level random caller that, after each student token, hands the next k
tokens to the teacher with probability q and no command (the D14 baseline at a matched call ratio).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .commands import COMMAND, TEACHER, CommandParser
from .runner import ModelRunner

STUDENT_MODE, TEACHER_MODE, DONE = 0, 1, 2


@dataclass
class RelayOutput:
    tokens: list[list[int]]  # response tokens per row, EOS included
    authors: list[list[int]]  # TEXT, COMMAND or TEACHER per token (commands.py)
    calls: list[int]  # executed teacher calls per row
    forward_tokens: dict  # {"student": int, "teacher": int}: token positions each model processed

    @property
    def teacher_mask(self) -> list[list[bool]]:
        return [[a == TEACHER for a in row] for row in self.authors]


def relay_generate(student, teacher, prompts, *, commands, max_new_tokens, eos_ids, temperature=0.0,
                   teacher_temperature=None, top_p=1.0, seed=None, teacher_free=False, fixed_call_tokens=None,
                   max_calls=None, max_call_tokens=None, student_vocab_limit=None, teacher_vocab_limit=None,
                   random_calls=None, cuda_graphs=None) -> RelayOutput:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("relay_generate needs at least one prompt, and every prompt at least one token")
    for name, model in (("student", student), ("teacher", teacher)):
        if max(commands.call_id, commands.end_id) >= model.config.vocab_size:
            raise ValueError(f"command token ids {commands.call_id}, {commands.end_id} lie outside the "
                             f"{name}'s {model.config.vocab_size} embedding rows")
    B, command_ids = len(prompts), (commands.call_id, commands.end_id)
    max_len = max(map(len, prompts)) + max_new_tokens
    s_run = ModelRunner(student, B, max_len, temperature=temperature, top_p=top_p, seed=seed,
                        banned_ids=command_ids if teacher_free else (), vocab_limit=student_vocab_limit,
                        cuda_graphs=cuda_graphs)
    # The teacher never writes command tokens: they would mean nothing in its span (D2).
    t_run = ModelRunner(teacher, B, max_len, temperature=temperature if teacher_temperature is None
                        else teacher_temperature, top_p=top_p, seed=None if seed is None else seed + 1,
                        banned_ids=command_ids, vocab_limit=teacher_vocab_limit, cuda_graphs=cuda_graphs)
    tokens, authors = [[] for _ in range(B)], [[] for _ in range(B)]
    teacher_view = [list(p) for p in prompts]  # append-only: authorship is known when a token is written
    parsers = [CommandParser(commands) for _ in range(B)]
    mode, left, calls, caught_up = [STUDENT_MODE] * B, [0] * B, [0] * B, [False] * B
    s_next = dict(enumerate(s_run.extend(list(range(B)), [list(p) for p in prompts]).tolist()))
    t_next: dict[int, int] = {}
    coin = random.Random(seed)
    while True:
        for r in range(B):
            if mode[r] == DONE:
                continue
            if mode[r] == TEACHER_MODE:
                token, author, n = t_next[r], TEACHER, None
                left[r] -= 1
            else:
                token = s_next[r]
                author, n = parsers[r].feed(token)
            tokens[r].append(token)
            authors[r].append(author)
            if author != COMMAND:
                teacher_view[r].append(token)
            if token in eos_ids and author != COMMAND or len(tokens[r]) >= max_new_tokens:
                mode[r] = DONE
                continue
            if mode[r] == TEACHER_MODE:
                mode[r] = STUDENT_MODE if left[r] == 0 else TEACHER_MODE
                continue
            if n is not None and (max_calls is None or calls[r] < max_calls):
                n = fixed_call_tokens or n
            elif random_calls and not parsers[r].pending and coin.random() < random_calls[0]:
                n = random_calls[1]
            else:
                continue
            left[r] = min(n, max_new_tokens - len(tokens[r]), max_call_tokens or n)
            mode[r], caught_up[r], calls[r] = TEACHER_MODE, False, calls[r] + 1
        live = [r for r in range(B) if mode[r] != DONE]
        if not live:
            break
        s_next = dict(zip(live, s_run.decode(live, [tokens[r][-1] for r in live]).tolist()))
        catch = [r for r in live if mode[r] == TEACHER_MODE and not caught_up[r]]
        going = [r for r in live if mode[r] == TEACHER_MODE and caught_up[r]]
        t_next = {}
        if catch:
            t_next.update(zip(catch, t_run.extend(catch, [teacher_view[r] for r in catch]).tolist()))
            for r in catch:
                caught_up[r] = True
        if going:
            t_next.update(zip(going, t_run.decode(going, [tokens[r][-1] for r in going]).tolist()))
    return RelayOutput(tokens, authors, calls, {"student": s_run.forward_tokens, "teacher": t_run.forward_tokens})
