"""Rewards (paper §3.2.3, D10): the auditable case table tests/reward_table.csv, plus properties.

Table notation: a group is written like the paper's worked groups, `c(0.1)` = correct with call ratio
rho = 0.1, `w(0)x3` = three wrong samples that never called; ` | ` separates groups of one batch.
Each row is checked stage by stage: first the scenario of every group, then the rewards.
"""
import csv
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_ref.grpo_loss import group_advantages
from relay_ref.rewards import (STUDENT_SOLVABLE, TEACHER_DEPENDENT, TEACHER_UNSOLVABLE,
                               difficulty_aware_rewards, group_rewards, scenario, simple_rewards)

ROWS = list(csv.DictReader(open(Path(__file__).with_name("reward_table.csv"), newline="")))


def parse_group(text):
    samples = []
    for flag, rho, times in re.findall(r"([cw])\(([\d.]+)\)(?:x(\d+))?", text):
        samples += [(flag == "c", float(rho))] * int(times or 1)
    assert samples, f"unparsable group {text!r}"
    return [c for c, _ in samples], [r for _, r in samples]


def row_groups(row):
    groups = [parse_group(g) for g in row["group"].split("|")]
    scenarios = [s.strip() for s in row["scenario"].split("|")]
    expected = [[float(x) for x in e.split()] for e in row["expected"].split("|")]
    assert len(groups) == len(scenarios) == len(expected), row["id"]
    return groups, scenarios, expected


def row_options(row):
    return dict(independence_bonus=float(row["bonus"]), exploration=row["exploration"] == "on")


def test_table_ids_unique_and_every_cell_covered():
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    cells, options = set(), set()
    for row in ROWS:
        if row["reward"] != "difficulty":
            continue
        options.add((row["bonus"], row["exploration"]))
        for (correct, ratios), case, _ in zip(*row_groups(row)):
            cells |= {(case, c, r > 0) for c, r in zip(correct, ratios)}
    possible = {(STUDENT_SOLVABLE, c, k) for c in (0, 1) for k in (0, 1)} | {
        (TEACHER_DEPENDENT, 1, 1), (TEACHER_DEPENDENT, 0, 0), (TEACHER_DEPENDENT, 0, 1),
        (TEACHER_UNSOLVABLE, 0, 0), (TEACHER_UNSOLVABLE, 0, 1)}
    assert cells == possible, "every reachable cell of the D10 table needs a row"
    assert options == {("1.5", "on"), ("1.0", "on"), ("1.5", "off")}


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_reward_table(row):
    groups, scenarios, expected = row_groups(row)
    for (correct, ratios), case in zip(groups, scenarios):
        assert scenario(correct, ratios) == case, f"{row['id']}: scenario stage ({row['rule']})"
    for (correct, ratios), want in zip(groups, expected):
        got = (simple_rewards(correct, ratios) if row["reward"] == "simple"
               else difficulty_aware_rewards(correct, ratios, **row_options(row)))
        assert got == pytest.approx(want, abs=1e-12), f"{row['id']}: reward stage ({row['rule']}): {row['why']}"
    if row["reward"] == "difficulty":
        # The batch path: all groups of the row interleaved in one shuffled batch, tagged by group id.
        batch = [(c, r, g, want[i]) for g, ((cs, rs), want) in enumerate(zip(groups, expected))
                 for i, (c, r) in enumerate(zip(cs, rs))]
        random.Random(0).shuffle(batch)
        correct, ratios, gids, want = zip(*batch)
        got = group_rewards(list(correct), list(ratios), list(gids), **row_options(row))
        assert got == pytest.approx(list(want), abs=1e-12), f"{row['id']}: batch stage (group independence)"


def test_zero_variance_group_gets_zero_advantage():
    (correct, ratios), = row_groups(next(r for r in ROWS if r["id"] == "R04"))[0]
    assert group_advantages(difficulty_aware_rewards(correct, ratios), [0] * 4).tolist() == [0.0] * 4


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        simple_rewards([True], [0.1, 0.2])
    with pytest.raises(ValueError):
        difficulty_aware_rewards([True, False], [0.1, 1.2])
    with pytest.raises(ValueError):
        group_rewards([True, False], [0.0, 0.0], [0])


sample = st.tuples(st.booleans(), st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
group = st.lists(sample, min_size=2, max_size=10)
options = st.fixed_dictionaries({"independence_bonus": st.sampled_from([1.5, 1.0]), "exploration": st.booleans()})


@given(group, options, st.randoms(use_true_random=False))
def test_permutation_equivariant_and_bounded(samples, opts, rnd):
    correct, ratios = map(list, zip(*samples))
    order = list(range(len(samples)))
    rnd.shuffle(order)
    for fn in (lambda c, r: difficulty_aware_rewards(c, r, **opts), simple_rewards):
        rewards = fn(correct, ratios)
        assert all(-1.0 <= x <= 1.5 for x in rewards)
        assert fn([correct[i] for i in order], [ratios[i] for i in order]) == [rewards[i] for i in order]


@given(st.lists(group, min_size=1, max_size=5), options, st.randoms(use_true_random=False))
def test_group_independence(groups, opts, rnd):
    """R05 (design.md GRPO (b)): a group's rewards depend only on that group, wherever its rollouts sit in the batch."""
    batch = [(c, r, g, i) for g, samples in enumerate(groups) for i, (c, r) in enumerate(samples)]
    rnd.shuffle(batch)
    correct, ratios, gids, where = map(list, zip(*batch))
    rewards = group_rewards(correct, ratios, gids, **opts)
    alone = [difficulty_aware_rewards(*map(list, zip(*samples)), **opts) for samples in groups]
    assert rewards == [alone[g][i] for g, i in zip(gids, where)]
