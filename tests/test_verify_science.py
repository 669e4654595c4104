"""Science verdicts: option letters in strict and lenient mode, shuffles, free-form quantities."""

from __future__ import annotations

from collections import Counter

import pytest

from branchmerge.verify import grade, grade_rows, shuffle_options
from branchmerge.verify.choice import choice_letter

OPTIONS = {"A": "1.6 m/s", "B": "3.2 m/s", "C": "6.4 m/s", "D": "0 m/s"}
REF = {"answer": "B", "options": OPTIONS}


@pytest.mark.parametrize(
    ("segment", "strict", "lenient"),
    [
        ("So the speed doubles. \\boxed{B}", ("B", "boxed"), ("B", "boxed")),
        ("$\\boxed{\\text{B}}$", ("B", "boxed"), ("B", "boxed")),
        ("\\boxed{(B)}", ("B", "boxed"), ("B", "boxed")),
        ("\\boxed{B) 3.2 m/s}", ("B", "boxed"), ("B", "boxed")),
        ("Answer: B", ("B", "answer"), ("B", "answer")),
        ("**Answer:** B", ("B", "answer"), ("B", "answer")),
        ("Answer: $B$", ("B", "answer"), ("B", "answer")),
        ("Answer: (B)", ("B", "answer"), ("B", "answer")),
        ('Answer: "B"', ("B", "answer"), ("B", "answer")),
        ("Answer: A\nWait, recheck.\nAnswer: B", ("B", "answer"), ("B", "answer")),
        ("The final answer is B.", ("B", "final_answer"), ("B", "final_answer")),
        ("I think the correct answer is B", ("B", "answer"), ("B", "answer")),
        ("The answer is for sure B, it can't be A or C", ("B", "answer"), ("B", "answer")),
        ("Option (B) is correct.", ("B", "answer"), ("B", "answer")),
        ("réponse est B non A", ("B", "answer"), ("B", "answer")),
        ("答案是 B", ("B", "answer"), ("B", "answer")),
        ("Ответ: B", ("B", "answer"), ("B", "answer")),
        ("B", ("B", "leading_letter"), ("B", "leading_letter")),
        ("(B) 3.2 m/s, because the speed doubles", ("B", "leading_letter"), ("B", "leading_letter")),
        ("B. It can't be A or C", ("B", "leading_letter"), ("B", "leading_letter")),
        ("B。不是 A", ("B", "leading_letter"), ("B", "leading_letter")),
        ("It's not A because the mass doubles, therefore I think it's B", ("B", "it_is"), ("B", "it_is")),
        ("The answer is not A, it is B.", ("B", "it_is"), ("B", "it_is")),
        ("The answer is B, since A ignores friction.", ("B", "answer"), ("B", "answer")),
        ("Answer: because the mass doubles, B", ("", "none"), ("B", "last_letter")),
        ("A careful look gives C", ("", "none"), ("C", "last_letter")),
        ("Probably B. A ignores friction and is wrong.", ("", "none"), ("B", "last_letter")),
        ("It is not A.", ("", "none"), ("", "none")),
        ("the answer depends on whether A holds", ("", "none"), ("", "none")),
        ("\\boxed{3.2 m/s}", ("", "none"), ("B", "boxed_option_text")),
        ("Answer: F", ("", "none"), ("", "none")),
        ("answer: b is my guess", ("", "none"), ("", "none")),
        ("No idea.", ("", "none"), ("", "none")),
        # issue 14: plain statements strict mode must read, and letters lenient mode must not pick
        ('The capital is Tokyo. So the answer is "C".\n\nAnswer: "C"', ("C", "answer"), ("C", "answer")),
        ("thinking about it I think the correct answer is C", ("C", "answer"), ("C", "answer")),
        ("The answer is for sure D, it can't be A or B", ("D", "answer"), ("D", "answer")),
        ("The answer: D, it doesn't make sense for it to be A or B", ("D", "answer"), ("D", "answer")),
        ("Because B is valid", ("B", "answer"), ("B", "answer")),
        ("正确答案是C", ("C", "answer"), ("C", "answer")),
        ("B不是 A", ("B", "leading_letter"), ("B", "leading_letter")),
        ("الإجابة الصحيحة هي C", ("C", "answer"), ("C", "answer")),
        ("la réponse correcte est (C)", ("C", "answer"), ("C", "answer")),
        ("So the answer is B.\n\nA", ("B", "answer"), ("B", "answer")),
        ("The answer is C.\n\nAnswer: A", ("A", "answer"), ("A", "answer")),
        ("Surely not A; D fits the data", ("", "none"), ("D", "last_letter")),
        ("It can't be A, the mass doubles", ("", "none"), ("", "none")),
        ("A is wrong and so is B", ("", "none"), ("", "none")),
        ("Neither A nor B fits", ("", "none"), ("", "none")),
    ],
)
def test_choice_extraction(segment: str, strict: tuple[str, str], lenient: tuple[str, str]) -> None:
    got_strict = choice_letter(segment, "ABCD", "strict", OPTIONS)
    got_lenient = choice_letter(segment, "ABCD", "lenient", OPTIONS)
    assert (got_strict.text, got_strict.rule) == strict
    assert (got_lenient.text, got_lenient.rule) == lenient


def test_both_modes_reported_and_mode_picks_the_verdict() -> None:
    completion = "<think>\nAnswer: A? no.\n</think>\n\nA careful look gives B"
    strict = grade("science", completion, REF)
    assert strict.verdict == "unparsed"
    assert strict.detail["strict"]["verdict"] == "unparsed"
    assert strict.detail["lenient"] == {"extracted": "B", "rule": "last_letter", "verdict": "correct"}
    lenient = grade("science", completion, REF, science_mode="lenient")
    assert lenient.verdict == "correct" and lenient.detail["rule"] == "last_letter"


def test_letters_in_the_reasoning_do_not_count() -> None:
    assert grade("science", "<think>\nAnswer: B\n</think>\n\nAnswer: C", REF).verdict == "incorrect"
    truncated = grade("science", "<think>\nAnswer: B", REF)
    assert truncated.verdict == "truncated"
    assert truncated.detail["strict"]["verdict"] == truncated.detail["lenient"]["verdict"] == "truncated"


def test_five_options_and_bare_letter_reference() -> None:
    ref = {"answer": "E", "options": {**OPTIONS, "E": "12.8 m/s"}}
    assert grade("science", "<think>x</think>Answer: E", ref).verdict == "correct"
    assert grade("science", "<think>x</think>Answer: C", {"answer": "C"}).verdict == "correct"
    assert grade("science", "<think>x</think>Answer: C", "C").verdict == "correct"


def test_shuffle_is_deterministic_and_keeps_the_answer() -> None:
    first = shuffle_options(REF, "gpqa-17", 3, 1234)
    assert first == shuffle_options(REF, "gpqa-17", 3, 1234)
    assert first["options"][first["answer"]] == OPTIONS["B"]
    assert sorted(first["options"].values()) == sorted(OPTIONS.values())
    assert [OPTIONS[old] for old in first["permutation"]] == [first["options"][k] for k in "ABCD"]
    assert REF == {"answer": "B", "options": OPTIONS}  # the input is not touched
    perms = {tuple(shuffle_options(REF, "gpqa-17", i, 1234)["permutation"]) for i in range(40)}
    assert len(perms) > 10  # each sample gets its own order
    assert shuffle_options(REF, "gpqa-17", 3, 99)["permutation"] != first["permutation"] or len(perms) > 10


def test_shuffle_spreads_the_answer_evenly() -> None:
    letters = Counter(shuffle_options(REF, f"q{i}", s, 0)["answer"] for i in range(100) for s in range(8))
    assert set(letters) == set("ABCD")
    assert all(150 <= n <= 250 for n in letters.values()), letters


def test_shuffle_rejects_bad_references() -> None:
    with pytest.raises(ValueError, match="options"):
        shuffle_options({"answer": "A"}, "q", 0, 0)
    with pytest.raises(ValueError, match="answer"):
        shuffle_options({"answer": "Z", "options": OPTIONS}, "q", 0, 0)


def test_regrading_a_shuffled_row() -> None:
    shuffled = shuffle_options(REF, "gpqa-1", 0, 7)
    completion = f"<think>\nwork\n</think>\n\nAnswer: {shuffled['answer']}"
    assert grade("science", completion, shuffled).verdict == "correct"


def test_free_form_quantities_are_graded_like_math() -> None:
    rows = [
        ("3.2 m/s", "\\boxed{3.2\\,\\text{m/s}}", "correct"),
        ("3.2 m/s", "\\boxed{3.20 \\text{ m/s}}", "correct"),
        ("2mg", "\\boxed{2mgh}", "incorrect"),
        ("3.2 m/s", "\\boxed{3.3\\text{ m/s}}", "incorrect"),
        ("6.02e23", "\\boxed{6.02 \\times 10^{23}}", "correct"),
        ("6.02 \\times 10^{23} mol^{-1}", "\\boxed{6.02\\times10^{23}}", "correct"),
        ("42", "\\boxed{42 \\text{ J}}", "correct"),
        ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", "correct"),
    ]
    out = grade_rows([{"domain": "science", "completion": f"<think>x</think>{p}", "reference": {"answer": g}}
                      for g, p, _ in rows], workers=1)
    assert [r["verdict"] for r in out] == [e for _, _, e in rows], [r["verdict_detail"] for r in out]
    assert out[0]["verdict_detail"]["unit_gold"] == "m/s"
