"""Answer checking (decision D13): the last balanced `\\boxed{}` counts, compared by value where numeric.

The table holds the verifier cases V01-V09 of design.md D13 plus the tricky cases of the toy world and of
D13. Every row has the same outcome with and without math-verify installed.
"""
import pytest

from relay_ref.answers import extract_boxed, is_correct, normalize

# id, gold, response text, expected extract_boxed, expected is_correct, why
CASES = [
    ("V01", "42", "... so \\boxed{42}", "42", True, "plain"),
    ("V02", "42", "\\boxed{41}. Wait, \\boxed{42}", "42", True, "the last box is the answer (D13)"),
    ("V03", "42", "the answer is 42", None, False, "no box: the format is required"),
    ("V04", "42", "<call>30</call> ... 42", None, False, "numbers outside a box never count"),
    ("V05", "0.5", "\\boxed{50\\%}", "50\\%", True, "a percent is /100"),
    ("V06", "0.5", "\\boxed{50}", "50", False, "no x100 leniency"),
    ("V07", "\\frac{\\sqrt{3}}{2}", "\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\dfrac{\\sqrt{3}}{2}", True,
     "\\dfrac is \\frac"),
    ("V08", "42", "\\boxed{42", None, False, "unterminated"),
    ("V09", "42", "7*6=<call>2</call>42\nSo the answer is \\boxed{42}.<|im_end|>", "42", True,
     "a box written by the teacher counts like the student's"),
    ("nested", "1/2", "so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", True, "balanced nested braces"),
    ("nested-set", "\\{1,2\\}", "\\boxed{\\{1,2\\}}", "\\{1,2\\}", True, "escaped braces inside a box"),
    ("last-unterminated", "41", "\\boxed{41} and then \\boxed{42", None, False,
     "the last box decides, even when it is unterminated"),
    ("several", "7", "\\boxed{3} \\boxed{5} \\boxed{7}", "7", True, "several boxes: the last"),
    ("spaces", "385", "\\boxed{ 385 }", " 385 ", True, "spaces are dropped"),
    ("dollar-dot", "385", "$\\boxed{385.}$", "385.", True, "`$` and a trailing `.` are dropped"),
    ("thousands", "1207", "\\boxed{1,207}", "1,207", True, "thousands separators"),
    ("negative", "-12", "\\boxed{-12}", "-12", True, "negative integer"),
    ("negative-wrong", "12", "\\boxed{-12}", "-12", False, "the sign matters"),
    ("neg-frac", "-0.75", "\\boxed{-\\frac{3}{4}}", "-\\frac{3}{4}", True, "negative \\frac by value"),
    ("frac-slash", "\\frac{6}{8}", "\\boxed{3/4}", "3/4", True, "a/b against \\frac, by value"),
    ("tfrac", "0.25", "\\boxed{\\tfrac{1}{4}}", "\\tfrac{1}{4}", True, "\\tfrac is \\frac"),
    ("decimal", "2.50", "\\boxed{2.5}", "2.5", True, "decimals by value"),
    ("int-vs-decimal", "3", "\\boxed{3.0}", "3.0", True, "an integer equals its decimal form"),
    ("gold-boxed", "\\boxed{42}", "\\boxed{42}", "42", True, "a gold answer given boxed is unwrapped"),
    ("empty", "42", "\\boxed{}", "", False, "an empty box is no answer"),
    ("text", "\\text{odd}", "\\boxed{\\text{odd}}", "\\text{odd}", True, "non-numeric: normalized strings"),
    ("zero-denominator", "1", "\\boxed{1/0}", "1/0", False, "1/0 is no number, and differs from 1"),
]


@pytest.mark.parametrize("case_id,gold,text,boxed,correct,why", CASES, ids=[c[0] for c in CASES])
def test_answer_checker_table(case_id, gold, text, boxed, correct, why):
    assert extract_boxed(text) == boxed, f"{case_id} extraction: {why}"
    assert is_correct(text, gold) is correct, f"{case_id} correctness: {why}"


def test_normalize_turns_simple_fracs_into_slashes_and_drops_decoration():
    assert normalize(" $\\dfrac{3}{4}$. ") == "3/4"
    assert normalize("\\left( 1, 2 \\right)") == "(1,2)"


def test_toy_world_solutions_are_correct_and_a_wrong_number_is_not():
    solution = "63*2=126\n43*9=387\n126+387=513\nSo the answer is \\boxed{513}."
    assert is_correct(solution, "513")
    assert not is_correct(solution.replace("513}", "514}"), "513")
    assert not is_correct(solution.replace("\\boxed{513}", "513"), "513")  # the last line's 513 is unboxed
