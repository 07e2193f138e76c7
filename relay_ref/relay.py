"""The relay sampler: a student and a teacher write one response together (paper §3.1; D2-D7).

Every row is independently in student mode, teacher mode or done. Each model keeps its own static KV
cache over its own view of the text: the student sees every token (its commands included, D5); the
teacher sees the prompt and the response without command tokens (D3), with its own dense positions.

One tick (docs/design.md, decoding):
1. the student decodes all live rows in lockstep, each consuming its row's latest token whoever wrote it,
   so it absorbs the teacher's tokens as they are written and handing control back costs no re-prefill;
   its sample is used (and fed to the D2 parser) only on rows in student mode;
2. rows that entered teacher mode catch the teacher up lazily from the longest prefix its cache holds
   (no token is forwarded twice), rows already in teacher mode decode one teacher token;
3. the host appends the tokens with their authors, parses the student's, counts the call's budget,
   checks EOS (a teacher EOS ends the response, D4) and switches modes.
The response budget counts every token, teacher tokens included (D7); n is clamped to what is left.

Modes for the paper's experiments: `teacher_free` bans the command tokens by a logit mask (§5.3),
`fixed_call_tokens=k` executes every well-formed command with n = k (§5.4), `max_calls` caps the executed
calls per response (random ones too), `teacher_temperature` (D4), and `random_calls=(q, k)`: after each
student token, a random caller hands the next k tokens to the teacher with probability q, no command
written (the D14 baseline at a matched call ratio). `fixed_call_tokens`, `max_call_tokens` and k are None
or >= 1. `slots=S` (default: all prompts) is continuous batching: at most S rows decode at a time, a
finished row's slot takes the next waiting prompt. Every random draw of a row (student, teacher, coin) is
a pure function of (seed, stream, prompt index, position) (sampling.py): for a seed, each response is the
same whatever `slots` is, up to floating-point batch effects on the logits.
"""

from dataclasses import dataclass

import torch

from .commands import COMMAND, TEACHER, CommandParser
from .runner import ModelRunner, admit, check_requests
from .sampling import row_key, uniform

STUDENT_MODE, TEACHER_MODE = 0, 1  # a row that is done has no slot


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
                   random_calls=None, slots=None, cuda_graphs=None, on_done=None) -> RelayOutput:
    S = check_requests(prompts, max_new_tokens, slots, student=student, teacher=teacher)
    for name, model in (("student", student), ("teacher", teacher)):
        if max(commands.call_id, commands.end_id) >= model.config.vocab_size:
            raise ValueError(f"command token ids {commands.call_id}, {commands.end_id} lie outside the "
                             f"{name}'s {model.config.vocab_size} embedding rows")
    for name, k in (("fixed_call_tokens", fixed_call_tokens), ("max_call_tokens", max_call_tokens),
                    ("random_calls k", random_calls and random_calls[1])):
        if k is not None and k < 1:
            raise ValueError(f"{name}={k}: a call hands the teacher at least one token (None: unset)")
    if random_calls is not None and not 0 <= random_calls[0] <= 1:
        raise ValueError(f"random_calls q={random_calls[0]} is not a probability in [0, 1]")
    N, command_ids = len(prompts), (commands.call_id, commands.end_id)
    tokens, authors, calls = [[] for _ in range(N)], [[] for _ in range(N)], [0] * N
    if max_new_tokens == 0:
        return RelayOutput(tokens, authors, calls, {"student": 0, "teacher": 0})
    seed = torch.seed() if seed is None else seed
    max_len = max(map(len, prompts)) + max_new_tokens
    shared = dict(top_p=top_p, seed=seed, cuda_graphs=cuda_graphs)
    s_run = ModelRunner(student, S, max_len, temperature=temperature, salt=0, vocab_limit=student_vocab_limit,
                        banned_ids=command_ids if teacher_free else (), **shared)
    # The teacher never writes command tokens: they would mean nothing in its span (D2).
    t_run = ModelRunner(teacher, S, max_len, temperature=temperature if teacher_temperature is None else
                        teacher_temperature, salt=1, banned_ids=command_ids, vocab_limit=teacher_vocab_limit, **shared)
    teacher_view = [list(p) for p in prompts]  # append-only: authorship is known when a token is written
    parsers = [CommandParser(commands) for _ in range(N)]
    mode, left = [STUDENT_MODE] * N, [0] * N
    slot_of, waiting, s_next, t_next = {}, list(range(N)), {}, {}  # slot_of: live row -> its cache slot
    while True:
        catch = []  # rows whose call starts now: the teacher catches up their view
        for r in list(slot_of):
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
                del slot_of[r]  # done: the slot is free for the next waiting prompt
                on_done and on_done(1)  # e.g. a progress bar's update
                continue
            if mode[r] == TEACHER_MODE:
                mode[r] = STUDENT_MODE if left[r] == 0 else TEACHER_MODE
                continue
            if max_calls is not None and calls[r] >= max_calls:
                continue
            if n is not None:
                n = fixed_call_tokens or n
            elif random_calls and not parsers[r].pending and \
                    uniform(row_key(seed, 2, r), len(tokens[r])) < random_calls[0]:  # the coin's own stream
                n = random_calls[1]
            else:
                continue
            left[r] = min(n, max_new_tokens - len(tokens[r]), max_call_tokens or n)
            mode[r], calls[r] = TEACHER_MODE, calls[r] + 1
            catch.append(r)
        new = admit(slot_of, S, waiting)
        if not slot_of:
            break
        old = [r for r in slot_of if r not in new]  # new holds at most S rows
        # new rows catch up from whatever prefix the slot's cache still holds
        s_next = s_run.advance(slot_of, {r: list(prompts[r]) for r in new}, {r: tokens[r][-1] for r in old})
        t_next = t_run.advance(slot_of, {r: teacher_view[r] for r in catch},
                               {r: tokens[r][-1] for r in old if mode[r] == TEACHER_MODE and r not in catch})
    return RelayOutput(tokens, authors, calls, {"student": s_run.forward_tokens, "teacher": t_run.forward_tokens})
