"""GRPO loss and advantages (paper §3.2.1 Eq. 1-2, D8, D9): the properties of design.md GRPO (a) and (b).

The loss is checked against a plain per-token Python loop written here from the equations, so a reader can
compare the two line by line; the rest are invariances the trainer relies on.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ref.grpo_loss import group_advantages, grpo_loss, token_logprobs
from relay_ref.model import Qwen3Config, Qwen3ForCausalLM

settings.register_profile("grpo", deadline=None, max_examples=60)
settings.load_profile("grpo")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tensors here are tiny: intra-op threads only add contention (10x slower on a busy 2-core box).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- advantages (design.md GRPO (b))

reward = st.integers(-10, 15).map(lambda k: k / 10)  # rewards on a 0.1 grid: distinct ones differ clearly
groups = st.lists(st.lists(reward, min_size=2, max_size=12), min_size=1, max_size=5)


def advantages_of(groups_):
    rewards = [r for g in groups_ for r in g]
    gids = [i for i, g in enumerate(groups_) for _ in g]
    return group_advantages(rewards, gids), gids


@given(groups)
def test_advantages_sum_to_zero_and_preserve_order(groups_):
    adv, gids = advantages_of(groups_)
    assert adv.dtype == torch.float32 and adv.shape == (len(gids),)
    start = 0
    for g in groups_:
        a = adv[start:start + len(g)].tolist()
        start += len(g)
        assert abs(sum(a)) < 1e-5 * len(g)
        for i in range(len(g)):
            for j in range(len(g)):
                if g[i] > g[j]:
                    assert a[i] > a[j]


@given(st.floats(-1, 1.5), st.integers(2, 16))
def test_equal_rewards_give_exactly_zero(value, size):
    assert group_advantages([value] * size, [7] * size).tolist() == [0.0] * size


def test_equal_non_dyadic_rewards_give_exactly_zero():
    # design.md GRPO (b): without the explicit zero, [0.7] * 8 leaves an eps-division residue of one sign.
    assert group_advantages([0.7] * 8 + [0.1] * 16, [0] * 8 + [1] * 16).tolist() == [0.0] * 24


@given(groups, st.floats(0.5, 4.0), st.floats(-2.0, 2.0))
def test_advantages_invariant_to_affine_rewards(groups_, a, b):
    adv, _ = advantages_of(groups_)
    moved, _ = advantages_of([[a * r + b for r in g] for g in groups_])
    torch.testing.assert_close(moved, adv, rtol=1e-3, atol=1e-3)


@given(groups, st.randoms(use_true_random=False))
def test_advantages_unaffected_by_other_groups(groups_, rnd):
    rows = [(r, gi) for gi, g in enumerate(groups_) for r in g]
    rnd.shuffle(rows)  # other groups interleaved and reordered around each group
    adv = group_advantages([r for r, _ in rows], [gi for _, gi in rows])
    for gi, g in enumerate(groups_):
        alone = dict(zip(g, group_advantages(g, [0] * len(g)).tolist()))  # equal rewards, equal advantages
        for a, (r, gj) in zip(adv.tolist(), rows):
            if gj == gi:
                assert a == pytest.approx(alone[r], abs=1e-6)


def test_advantages_worked_example():
    # R01's rewards: mean 0.6, unbiased variance (0.81 + 0.09 + 0.36 + 0.36) / 3 = 0.54 (D9: unbiased std).
    # Group 1 is G = 2: std of [1, 0] is sqrt(1/2), so A = +-0.5 / sqrt(0.5).
    adv = group_advantages([1.5, 1.0, 0.9, 0.0, 0.0, 0.0], [0, 1, 0, 0, 1, 0]).tolist()
    std = math.sqrt(0.54) + 1e-6
    std2 = math.sqrt(0.5) + 1e-6
    want = [0.9 / std, 0.5 / std2, 0.3 / std, -0.6 / std, -0.5 / std2, -0.6 / std]
    assert adv == pytest.approx(want, rel=1e-6)


@given(groups)
def test_unscaled_advantages_are_reward_minus_group_mean(groups_):
    # design.md GRPO (b) scale=none: a group whose rewards differ by 0.1 gets advantages of a few hundredths, where
    # Eq. 2's division by the group's std would blow them up to about +-1.
    rewards = [r for g in groups_ for r in g]
    adv = group_advantages(rewards, [i for i, g in enumerate(groups_) for _ in g], scale="none").tolist()
    want = [r - sum(g) / len(g) if max(g) > min(g) else 0.0 for g in groups_ for r in g]
    assert adv == pytest.approx(want, abs=1e-6)


def test_unknown_advantage_scale_is_refused():
    with pytest.raises(ValueError, match="advantage scale 'batch'"):
        group_advantages([1.0, 0.0], [0, 0], scale="batch")


def test_group_of_one_is_refused():
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages([1.0, 0.0, 0.5], [0, 0, 1])


# ---------------------------------------------------------------- the loss against a per-token loop

def loop_loss(logp, old, ref, adv, mask, n_tokens, eps_low, eps_high, beta):
    """Paper Eq. 1 with D9's per-token ratio and k3 KL, one token at a time in plain Python floats."""
    total, clipped = 0.0, 0
    for i in range(len(logp)):
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            s = math.exp(min(20.0, max(-20.0, logp[i][t] - old[i][t])))
            a = adv[i]
            clipped_term = min(max(s, 1 - eps_low), 1 + eps_high) * a
            policy = -min(s * a, clipped_term)
            x = min(20.0, max(-20.0, ref[i][t] - logp[i][t]))
            k3 = min(10.0, max(-10.0, math.exp(x) - x - 1))
            total += policy + beta * k3
            clipped += clipped_term < s * a
    return total / max(n_tokens, 1), clipped


def random_batch(seed, batch, length, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, length, generator=g, dtype=dtype) * 5
    old = logp + torch.randn(batch, length, generator=g, dtype=dtype) * 0.4  # both clip sides get hit
    ref = logp + torch.randn(batch, length, generator=g, dtype=dtype) * 2.5  # k3 beyond its +-10 clamp too
    adv = torch.randn(batch, generator=g, dtype=dtype)
    mask = torch.rand(batch, length, generator=g) < 0.6
    return logp, old, ref, adv, mask


@given(st.integers(0, 2**31), st.integers(1, 5), st.integers(1, 9), st.floats(0.05, 0.5), st.floats(0.05, 0.5),
       st.sampled_from([0.0, 0.01, 0.3]))
def test_loss_equals_per_token_loop(seed, batch, length, eps_low, eps_high, beta):
    logp, old, ref, adv, mask = random_batch(seed, batch, length)
    m = int(mask.sum())
    loss, stats = grpo_loss(logp, old, ref, adv, mask, m, eps_low, eps_high, beta)
    want, n_clipped = loop_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), m,
                                eps_low, eps_high, beta)
    assert loss.item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert stats["tokens"] == m
    assert stats["clip_frac"] == pytest.approx(n_clipped / max(m, 1))


def test_loss_defaults_are_d9():
    logp, old, ref, adv, mask = random_batch(3, 4, 8)
    loss, _ = grpo_loss(logp, old, ref, adv, mask, 11)
    want, _ = loop_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 11, 0.2, 0.2, 0.01)
    assert loss.item() == pytest.approx(want, rel=1e-9)


# ---------------------------------------------------------------- masks, accumulation, on-policy identity

GARBAGE = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30]


@given(st.integers(0, 2**31), st.integers(1, 5), st.integers(1, 9), st.sampled_from(GARBAGE), st.booleans())
def test_masked_positions_cannot_leak(seed, batch, length, junk, per_token_adv):
    """design.md GRPO (a): garbage at mask = 0 (teacher tokens, padding) leaves loss and gradients bit-identical."""
    logp, old, ref, adv, mask = random_batch(seed, batch, length, torch.float32)
    mask[0, 0] = True  # at least one trained token, so the gradients are not trivially zero
    if per_token_adv:
        adv = adv[:, None].expand(batch, length).clone()

    def run(lp, o, r, a):
        leaf = lp.clone().requires_grad_(True)
        loss, _ = grpo_loss(leaf, o, r, a, mask, int(mask.sum()), beta=0.05)
        loss.backward()
        return loss.detach(), leaf.grad

    clean_loss, clean_grad = run(logp, old, ref, adv)
    bad = [x.masked_fill(~mask, junk) for x in (logp, old, ref)]
    bad_adv = adv.masked_fill(~mask, junk) if per_token_adv else adv.masked_fill(~mask.any(1), junk)
    loss, grad = run(*bad, bad_adv)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.equal(loss, clean_loss) and torch.equal(grad, clean_grad)
    assert (grad[~mask] == 0).all()


@given(st.integers(0, 2**31), st.integers(2, 8), st.integers(1, 9), st.randoms(use_true_random=False))
def test_micro_batches_with_global_token_count_add_up(seed, batch, length, rnd):
    """design.md GRPO (a): any partition of the batch, each part divided by the global M, sums to the full loss."""
    logp, old, ref, adv, mask = random_batch(seed, batch, length)
    m = int(mask.sum())
    leaf = logp.clone().requires_grad_(True)
    full, _ = grpo_loss(leaf, old, ref, adv, mask, m)
    full.backward()
    order = list(range(batch))
    rnd.shuffle(order)  # permuted rollouts, cut at random points
    cuts = sorted(rnd.sample(range(1, batch), rnd.randint(0, batch - 1)))
    parts = [order[a:b] for a, b in zip([0, *cuts], [*cuts, batch])]
    leaf2 = logp.clone().requires_grad_(True)
    total = 0.0
    for idx in parts:
        part, _ = grpo_loss(leaf2[idx], old[idx], ref[idx], adv[idx], mask[idx], m)
        part.backward()
        total += part.item()
    assert total == pytest.approx(full.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(leaf2.grad, leaf.grad, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- token_logprobs and the model

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    return Qwen3ForCausalLM(cfg)


def reference_logprobs(model, ids, temperature):
    logits = model(ids) / temperature
    return logits.log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [1, 3, 7, 1024])
def test_token_logprobs_match_full_log_softmax(tiny, chunk, temperature):
    ids = torch.randint(0, 50, (3, 13), generator=torch.Generator().manual_seed(chunk))
    with torch.no_grad():
        want = reference_logprobs(tiny, ids, temperature)
        got = token_logprobs(tiny, ids, temperature, chunk)
    assert got.dtype == torch.float32 and got.shape == (3, 12)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # Differentiable too: the same gradients as through the full logits.
    weights = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    params = list(tiny.parameters())
    g_got = torch.autograd.grad((token_logprobs(tiny, ids, temperature, chunk) * weights).sum(), params)
    g_want = torch.autograd.grad((reference_logprobs(tiny, ids, temperature) * weights).sum(), params)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_token_logprobs_graph_never_holds_whole_sequence_logits(tiny):
    """The lm_head is recomputed per chunk in backward, so autograd saves no [B, T, vocab]-sized logits."""
    ids = torch.randint(0, 50, (3, 13), generator=torch.Generator().manual_seed(0))
    saved = []

    def keep(t):
        saved.append(t.shape)
        return t
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        token_logprobs(tiny, ids, chunk=4).sum().backward()
    logits_like = sum(math.prod(shape) for shape in saved if len(shape) == 3 and shape[-1] == 50)
    assert logits_like < 3 * 12 * 50


def test_token_logprobs_of_one_token_is_empty(tiny):
    assert token_logprobs(tiny, torch.tensor([[3], [4]])).shape == (2, 0)


def model_batch(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (4, 10), generator=g)
    mask = torch.rand(4, 9, generator=g) < 0.7
    mask[:, :2] = False  # prompt positions are never trained
    return ids, mask, torch.randn(4, generator=g)


def test_on_policy_gradient_is_group_baseline_reinforce(tiny):
    """design.md GRPO (a): with old = stopgrad(logp) and beta = 0 the gradient is -(1/M) sum m * A * grad logp."""
    ids, mask, adv = model_batch(2)
    m = int(mask.sum())
    params = list(tiny.parameters())
    logp = token_logprobs(tiny, ids)
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach() - 1.0, adv, mask, m, beta=0.0)
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == 1.0
    got = torch.autograd.grad(loss, params, retain_graph=True)
    want = torch.autograd.grad(-(mask * adv[:, None] * logp).sum() / m, params, retain_graph=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)
    loss0, _ = grpo_loss(logp, logp.detach(), logp.detach() - 1.0, torch.zeros(4), mask, m, beta=0.0)
    assert all((g == 0).all() for g in torch.autograd.grad(loss0, params))


def test_model_gradient_accumulates_over_micro_batches(tiny):
    ids, mask, adv = model_batch(3)
    m = int(mask.sum())
    params = list(tiny.parameters())
    with torch.no_grad():
        old = token_logprobs(tiny, ids) + 0.1 * torch.randn(4, 9, generator=torch.Generator().manual_seed(4))
        ref = token_logprobs(tiny, ids) - 0.2
    full = torch.autograd.grad(grpo_loss(token_logprobs(tiny, ids), old, ref, adv, mask, m)[0], params)
    summed = [torch.zeros_like(p) for p in params]
    for idx in ([0], [1, 2], [3]):
        part = grpo_loss(token_logprobs(tiny, ids[idx]), old[idx], ref[idx], adv[idx], mask[idx], m)[0]
        for s, g in zip(summed, torch.autograd.grad(part, params)):
            s += g
    for a, b in zip(summed, full):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
