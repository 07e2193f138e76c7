"""Rewards for GRPO rollouts (paper §3.2.3, Eq. 3; decisions D6, D10).

Inputs per rollout: `correct` (the verifier's verdict on the whole response, whoever wrote the answer, D13)
and `ratio` = rho(y) = teacher tokens / all response tokens (D6), in [0, 1]. "Called" means rho > 0.

- `simple_rewards`: Eq. 3, r = 1(correct) - rho.
- `difficulty_aware_rewards`: the D10 table for ONE group (the G samples of one query); the scenario is
  decided from that group alone (the released code decided it over the whole batch, a bug not followed).
- `group_rewards`: the difficulty-aware reward for a batch of rollouts tagged with group ids.
Every reward lies in [-1, 1.5].
"""

STUDENT_SOLVABLE, TEACHER_DEPENDENT, TEACHER_UNSOLVABLE = "student-solvable", "teacher-dependent", "teacher-unsolvable"


def _check(correct, ratios) -> None:
    if len(correct) != len(ratios):
        raise ValueError(f"{len(correct)} correctness flags but {len(ratios)} call ratios")
    if any(not 0.0 <= r <= 1.0 for r in ratios):
        raise ValueError(f"call ratios must lie in [0, 1], got {list(ratios)}")


def simple_rewards(correct, ratios) -> list[float]:
    """Paper Eq. 3: r_simple(y) = 1(a = g) - rho(y)."""
    _check(correct, ratios)
    return [float(bool(c)) - r for c, r in zip(correct, ratios)]


def scenario(correct, ratios) -> str:
    """The group's D10 scenario: someone solved it alone / only callers solved it / nobody solved it."""
    _check(correct, ratios)
    if any(c and r == 0 for c, r in zip(correct, ratios)):
        return STUDENT_SOLVABLE
    return TEACHER_DEPENDENT if any(correct) else TEACHER_UNSOLVABLE


def difficulty_aware_rewards(correct, ratios, independence_bonus=1.5, exploration=True) -> list[float]:
    """Paper §3.2.3 / D10 for one group. Ablations (Table 3): independence_bonus=1.0; exploration=False."""
    case = scenario(correct, ratios)
    rewards = []
    for c, r in zip(correct, ratios):
        if c:  # correct with r == 0 only occurs in the student-solvable scenario
            rewards.append(independence_bonus if r == 0 else 1.0 - r)
        elif case == TEACHER_DEPENDENT and r == 0:
            rewards.append(-1.0)  # "penalizing stubbornness": the teacher could have helped
        elif case == TEACHER_UNSOLVABLE and exploration:
            rewards.append(float(r))  # "incentivizing exploration"; 0 when it never called
        else:
            rewards.append(0.0)
    return rewards


def group_rewards(correct, ratios, group_ids, **options) -> list[float]:
    """`difficulty_aware_rewards` applied to each group of a batch separately; options as there."""
    _check(correct, ratios)
    if len(group_ids) != len(correct):
        raise ValueError(f"{len(group_ids)} group ids for {len(correct)} rollouts")
    members: dict = {}
    for i, g in enumerate(group_ids):
        members.setdefault(g, []).append(i)
    rewards = [0.0] * len(correct)
    for idx in members.values():
        group = difficulty_aware_rewards([correct[i] for i in idx], [ratios[i] for i in idx], **options)
        for i, r in zip(idx, group):
            rewards[i] = r
    return rewards
