"""The per-model engine: the decode step is graph-capturable, and lazy catch-up forwards each token once."""
import torch

from relay_ref.model import Qwen3Config, Qwen3ForCausalLM
from relay_ref.runner import ModelRunner

CFG = Qwen3Config(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32)
PROMPTS = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]


def model():
    torch.manual_seed(0)
    return Qwen3ForCausalLM(CFG).eval()


def decode_inputs(runner):
    positions = [len(runner.cache.ids[s]) for s in range(4)]
    tok, pos, slots = torch.tensor([[5], [6], [7], [8]]), torch.tensor(positions).view(4, 1), torch.arange(4).view(4, 1)
    return tok, pos, slots, *runner._sampling_inputs(list(range(4)))


def test_the_decode_step_compiles_whole_with_no_graph_break():
    m = model()
    for temperature, top_p in [(0.0, 1.0), (1.0, 0.9)]:  # greedy, and sampling with the top-p sort
        eager, graphed = (ModelRunner(m, 4, 64, temperature=temperature, top_p=top_p, seed=0) for _ in range(2))
        for r in (eager, graphed):
            r.extend([0, 1, 2, 3], PROMPTS)
        inputs = decode_inputs(eager)
        step = torch.compile(graphed.step, fullgraph=True)  # fullgraph: any graph break is an error
        assert torch.equal(step(*inputs, 16), eager.step(*inputs, 16))


def test_extend_catches_up_from_the_longest_cached_prefix():
    r = ModelRunner(model(), 2, 64)
    r.extend([0], [[1, 2, 3, 4]])
    assert r.forward_tokens == 4
    r.extend([0], [[1, 2, 3, 4, 5, 6]])  # only the 2 new tokens are forwarded
    assert r.forward_tokens == 6
    r.extend([0], [[1, 2, 9, 9]])  # a rollback: truncate to the common prefix, then forward the rest
    assert r.forward_tokens == 8 and r.cache.ids[0] == [1, 2, 9, 9]


def test_a_rollback_gives_the_same_next_token_as_a_fresh_prefill():
    m = model()
    r = ModelRunner(m, 1, 64)
    r.extend([0], [[1, 2, 3, 4, 5, 6, 7]])
    again = r.extend([0], [[1, 2, 3, 40, 41]]).item()
    fresh = ModelRunner(m, 1, 64).extend([0], [[1, 2, 3, 40, 41]]).item()
    assert again == fresh


def test_decode_and_extend_agree_on_the_next_token():
    m = model()
    a, b = ModelRunner(m, 4, 64), ModelRunner(m, 4, 64)
    a.extend([0, 1, 2, 3], PROMPTS)
    b.extend([0, 1, 2, 3], [p[:-1] or p for p in PROMPTS])
    stepped = a.decode([0, 1, 2, 3], [11, 12, 13, 14]).tolist()
    caught_up = b.extend([0, 1, 2, 3], [p + [11 + i] for i, p in enumerate(PROMPTS)]).tolist()
    assert stepped == caught_up


def test_runners_share_the_transposed_head_until_the_weights_change():
    """On CPU the head is read in [hidden, vocab] layout; the copy is made once per weight version."""
    m = model()
    first, second = (ModelRunner(m, 4, 64) for _ in range(2))
    first.extend([0], PROMPTS[:1])
    second.extend([0], PROMPTS[:1])
    assert first.head_t is second.head_t and torch.equal(first.head_t, m.lm_head.weight.t())
    with torch.no_grad():
        m.lm_head.weight.mul_(2.0)  # what an optimizer step or a load does: an in-place update
    third = ModelRunner(m, 4, 64)
    third.extend([0], PROMPTS[:1])
    assert third.head_t is not first.head_t and torch.equal(third.head_t, m.lm_head.weight.t())


def test_common_prefix_of_a_fully_cached_view_leaves_one_token_to_recompute():
    """A view the slot already holds whole still needs one position forwarded, for its next-token logits."""
    from relay_ref.kv_cache import KVCache
    cache = KVCache(CFG, 2, 16, "cpu", torch.float32)
    cache.ids[0] = [1, 2, 3, 4]
    assert cache.common_prefix(0, [1, 2, 3, 4]) == 3  # len(view) - 1
    assert cache.common_prefix(0, [1, 2]) == 1
    assert cache.common_prefix(0, [1, 2, 3, 4, 5, 6]) == 4
    assert cache.common_prefix(0, [1, 2, 9, 4, 5]) == 2
    assert cache.common_prefix(1, [1, 2, 3]) == 0


def test_extending_to_the_view_already_cached_gives_the_same_next_token():
    m = model()
    r = ModelRunner(m, 1, 64)
    first = r.extend([0], [[1, 2, 3, 4, 5]]).item()
    assert r.extend([0], [[1, 2, 3, 4, 5]]).item() == first
    assert r.forward_tokens == 6 and r.cache.ids[0] == [1, 2, 3, 4, 5]


def test_a_vocab_limit_bans_every_row_from_the_limit_on():
    """Rows the tokenizer never produces (>= vocab_limit) are never sampled, the limit's own row included."""
    m = model()
    free = ModelRunner(m, 1, 64).extend([0], [[1, 2, 3]]).item()
    assert free > 0
    limited = ModelRunner(m, 1, 64, vocab_limit=free).extend([0], [[1, 2, 3]]).item()
    assert limited < free


def test_a_decode_holding_every_slot_in_any_row_order_reads_the_cache_in_place_and_matches_one_row_at_a_time():
    m = model()
    together, alone = ModelRunner(m, 4, 64, temperature=1.0, seed=5), ModelRunner(m, 4, 64, temperature=1.0, seed=5)
    slots, rows = [2, 0, 3, 1], [0, 1, 2, 3]  # row r lives in slots[r]: every slot live, not in slot order
    for r in (together, alone):
        r.extend(slots, PROMPTS, rows)
    reads, update = [], together.cache.update
    def spy(layer, *args):  # noqa: E306
        k, v = update(layer, *args)
        reads.append(k.untyped_storage().data_ptr() == together.cache.k[layer].untyped_storage().data_ptr())
        return k, v
    together.cache.update = spy
    tokens = [[11 + r] for r in rows]
    for _ in range(6):
        batch = together.decode(slots, [t[-1] for t in tokens], rows).tolist()
        single = [alone.decode([s], [t[-1]], [r]).item() for s, t, r in zip(slots, tokens, rows)]
        assert batch == single
        for t, x in zip(tokens, batch):
            t.append(x)
    assert reads and all(reads)  # in place every time
    reads.clear()
    together.extend([2], [PROMPTS[0] + [t[-1] for t in tokens]])  # a catch-up after it gathers again
    assert reads and not any(reads)
