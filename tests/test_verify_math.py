"""Math verdicts: the curated pair set, the fast paths against the full check, time-outs, cache."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from branchmerge.errors import UserError
from branchmerge.verify import extract, grade, grade_rows, math_check
from branchmerge.verify.pool import WorkerPool, run_pool

PAIRS = [json.loads(line) for line in (Path(__file__).parent / "data/verify/math_pairs.jsonl").open()]


def _grade_pairs(pairs: list[dict]) -> list[dict]:
    out: list[dict] = []
    for fmt in ("auto", "int", "latex"):
        sub = [p for p in pairs if p["gold_format"] == fmt]
        rows = [{"domain": "math", "completion": p["completion"], "reference": p["gold"],
                 "finish_reason": p["finish_reason"], "pair": p} for p in sub]
        out += grade_rows(rows, workers=2, gold_format=fmt)
    return out


@pytest.fixture(scope="module")
def graded() -> list[dict]:
    return _grade_pairs(PAIRS)


def test_pair_set_covers_the_issue() -> None:
    assert len(PAIRS) >= 200
    cats = Counter(p["category"] for p in PAIRS)
    for cat in ("integer", "thousands", "fraction", "expression", "units_text", "interval_set_tuple", "matrix",
                "equation", "nested_braces", "multi_boxed", "reasoning_boxed", "tricky_wrong", "no_box"):
        assert cats[cat] >= 2, cat
    assert {p["expected"] for p in PAIRS} == {"correct", "incorrect", "unparsed", "truncated"}


def test_curated_pairs(graded: list[dict]) -> None:
    wrong = []
    for row in graded:
        pair, got = row["pair"], row["verdict"]
        if pair.get("known_limitation"):
            # still wrong in the documented way; if this starts passing, drop the marker
            assert got != pair["expected"], f"{pair['id']} now passes: remove known_limitation"
        elif got != pair["expected"]:
            wrong.append((pair["id"], pair["gold"], row["verdict_detail"].get("extracted"), pair["expected"], got))
    assert not wrong, wrong
    assert sum(1 for p in PAIRS if p.get("known_limitation")) <= 3


def test_every_verdict_explains_itself(graded: list[dict]) -> None:
    for row in graded:
        detail = row["verdict_detail"]
        assert {"extracted", "gold", "rule"} <= set(detail), detail


def _fast_candidates() -> list[tuple[str, str, str]]:
    """Every curated (gold, extracted) pair, plus each gold against re-spellings of itself."""
    out = []
    for p in PAIRS:
        found = extract.math_answer(p["completion"].rpartition("</think>")[2])
        fmt = p["gold_format"]
        if found.text:
            out.append((p["gold"], found.text, fmt))
        g = p["gold"]
        paren = g if "\\left" in g else g.replace("(", "\\left(").replace(")", "\\right)")
        for variant in (g, g.replace("\\frac", "\\dfrac"), g.replace(" ", ""), f" {g} ", paren, g.replace(",", ", "), g.replace(", ", ","),
                        f"${g}$", g + ".", f"x = {g}", f"{g}.0", f"{g}1", f"-{g}", f"{g}/1", f"{g}.0001"):
            out.append((g, variant, fmt))
    # lists in brackets: tuples, sets and intervals, including the empty intervals that are equal
    # with different endpoints, reordered sets, repeated elements and digit groups
    lists = [("(15,-29)", "(25,-29)"), ("(2,4)", "(3,4)"), ("(2,4)", "(4,2)"), ("(3,3)", "(4,4)"), ("[3,3]", "[4,4]"),
             ("(5,3]", "(6,3]"), ("(5,3]", "(2,3]"), ("[1,2)", "[1,3)"), ("[1,2)", "[1,2]"), ("(1,2)", "[1,2]"),
             ("\\{1,2\\}", "\\{2,1,1\\}"), ("\\{1,2,3\\}", "\\{3,2,1\\}"), ("\\{1,2\\}", "\\{1,3\\}"),
             ("(1,2)", "(1,2,3)"), ("(1,2,3)", "(1,2,4)"), ("(1,000)", "(1,001)"), ("(1, 6)", "(1,7)"),
             ("\\left( \\frac{3}{2}, -13 \\right)", "\\left( \\frac{4}{2}, -13 \\right)"), ("(\\sqrt{2}, \\pi)", "(\\sqrt{3}, \\pi)"),
             ("(\\frac{1}{3}, 2)", "(0.333333, 2)"), ("(\\frac{1}{3}, 2)", "(0.3333, 2)"), ("(a+5)(b+2)", "(a+5)(b+3)")]
    out += [(g, p, "latex") for g, p in lists]
    # expressions in variables: products, quotients and roots of lone letters, and what must be
    # left to sympy (names, calls, the constants e and i, equations, equal forms)
    symbolic = [("x^3+3x-6", "x^3+3x-6+1"), ("(a+5)(b+2)", "(a+5)(b+2)+1"), ("-13x+3", "-13x+4"), ("p - q", "q - p"),
                ("2k", "3k"), ("x+1", "y+1"), ("x^2", "x"), ("\\frac{a}{b}", "\\frac{b}{a}"), ("5", "5x"),
                ("3\\sqrt{x}", "3\\sqrt{y}"), ("2\\pi r", "2\\pi r^2"), ("x(x+1)", "x^2+x"), ("ab", "ba"), ("2ab", "2ba"),
                ("\\cos(x)", "\\cos(-x)"), ("cos(x)", "cos(-x)"), ("e^x", "e^{-x}"), ("i", "-i"), ("\\frac{x}{2}", "0.5x"),
                ("y = 2x+1", "2x+1"), ("2x+1", "y = 2x+1"), ("\\frac{1}{x}", "x^{-1}"), ("x \\cdot y", "xy"), ("A+1", "A+2"),
                ("k", "\\frac{2k}{2}"), ("f(x)", "f(-x)"), ("-1", "e^{i\\pi}"), ("2.718281828459045", "e"), ("1", "e^0"), ("\\frac{x}{3}", "\\frac{x}{3.0000001}")]
    out += [(g, p, "latex") for g, p in symbolic]
    # degrees, one-variable equations, numbers in a base, intervals to infinity: and the look-alikes
    # math-verify calls equal ("e=5" and "e=6", "12_3" and "12_4", two empty half-open intervals)
    shapes = [("120^\\circ", "220^\\circ"), ("120^{\\circ}", "120^\\circ"), ("45^\\circ", "\\frac{\\pi}{4}"),
              ("90^\\circ", "90.0^\\circ"), ("x=5", "x=6"), ("x=5", "x=5+1"), ("y = -2x", "y = -3x"), ("y=-2x", "y=-2x+1"),
              ("x=5", "x=2x-5"), ("x=5", "y=5"), ("y=2x", "2y=4x"), ("a=3", "a=\\frac{6}{2}"), ("e=5", "e=6"),
              ("4210_{5}", "5210_{5}"), ("4210_5", "4210_{5}"), ("10_{2}", "2"), ("0123_4", "123_4"), ("12_3", "12_4"),
              ("(5,\\infty)", "(6,\\infty)"), ("(-\\infty, 2)", "(-\\infty, 3)"), ("(-\\infty,2)", "(2,\\infty)"),
              ("[5,\\infty)", "(5,\\infty)"), ("(\\infty,5]", "(\\infty,6]"), ("(-\\infty,\\infty)", "(-\\infty,5)")]
    out += [(g, p, "latex") for g, p in shapes]
    return sorted(set(out))


def test_fast_paths_never_change_a_verdict() -> None:
    """The fast paths may only ever skip work: each one agrees with the full check."""
    cases = [(g, p, f, fast) for g, p, f in _fast_candidates() if (fast := math_check.fast_verdict(g, p, f))]
    assert len(cases) >= 150
    assert {c[3][1] for c in cases} == {"fast_same_text", "fast_number", "fast_value", "fast_list", "fast_symbolic",
                                          "fast_degrees", "fast_relation", "fast_base"}
    full = run_pool("branchmerge.verify.grader:_check_item", [(g, p, f, {}) for g, p, f, _ in cases],
                    lambda item, why: {"ok": None, "rule": why}, workers=2, timeout=10)
    disagree = [(g, p, fast, r) for (g, p, f, fast), r in zip(cases, full) if r["ok"] != fast[0]]
    assert not disagree, disagree


def test_fast_integer_rejects_long_numbers() -> None:
    assert math_check.fast_verdict("123456789012345", "123456789012346", "auto") is None
    assert math_check.fast_verdict("12", "012", "auto") == (True, "fast_number")
    assert math_check.fast_verdict("\\frac{1}{3}", "0.3333333", "auto") is None  # rounding: full check decides
    assert math_check.fast_verdict("\\frac{1}{3}", "0.34", "auto") == (False, "fast_number")
    assert math_check.fast_verdict("5", "y = 5", "auto") == (True, "fast_number")


def test_truncation_and_generation_errors() -> None:
    assert grade("math", "<think>long \\boxed{3}", "3").verdict == "truncated"
    assert grade("math", "<think>a</think>\\boxed{3}", "3", finish_reason="length").verdict == "truncated"
    assert grade("math", "<think>a</think>\\boxed{3}", "3", finish_reason="error").verdict == "error"
    assert grade("math", "\\boxed{3}", "3", require_think=False).verdict == "correct"
    assert grade("math", "<think>never closed \\boxed{3}", "3", require_think=False).verdict == "truncated"
    assert grade("math", "<think>a</think>\\boxed{3}", None).verdict == "error"


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown verify option"):
        grade("math", "x", "1", gold_fromat="int")
    with pytest.raises(UserError, match="gold format"):
        grade("math", "x", "1", gold_format="decimal")
    with pytest.raises(UserError, match="domain"):
        grade_rows([], domain="physics")


def test_timeout_in_worker_is_incorrect_and_flagged() -> None:
    rows = [{"domain": "math", "completion": "<think>a</think>\\boxed{10^{10^{10}}}", "reference": "5"},
            {"domain": "math", "completion": "<think>a</think>\\boxed{\\frac{2}{4}}", "reference": "\\frac12"},
            {"domain": "math", "completion": "<think>a</think>\\boxed{x+x}", "reference": "2x"}]
    start = time.monotonic()
    out = grade_rows(rows, workers=2, timeout=2)
    assert time.monotonic() - start < 20
    assert out[0]["verdict"] == "incorrect" and out[0]["verdict_detail"]["rule"] == "timeout"
    assert out[0]["verdict_detail"]["timeout"] is True
    assert [r["verdict"] for r in out[1:]] == ["correct", "correct"]


def test_pool_kills_a_worker_that_ignores_its_timer() -> None:
    lost = []
    start = time.monotonic()
    out = run_pool("tests.verify_helpers:hang_on_negative", [1, 2, -1, 3, 4], lambda item, why: lost.append(why) or why,
                   workers=2, timeout=0.5, grace=0.5)
    assert out == [2, 4, "timeout", 6, 8]
    assert lost == ["timeout"]
    assert time.monotonic() - start < 15


def test_pool_sends_a_chunk_back_to_the_worker_that_ran_its_key() -> None:
    """A chunk whose key a worker ran before goes back to that worker, batch after batch (its
    caches are warm for it); a worker with no chunk of its own takes new ones, then another's."""
    pool = WorkerPool("tests.verify_helpers:worker_pid", workers=2, timeout=5.0)
    try:
        first = pool.map(list(range(6)), lambda item, why: why, chunks=[[0, 1, 2], [3, 4, 5]], keys=["a", "b"])
        assert len(set(first[:3])) == len(set(first[3:])) == 1 and first[0] != first[3]
        # the same keys in the other order, with other items: each goes back to its worker
        again = pool.map(list(range(6)), lambda item, why: why, chunks=[[0, 1, 2], [3, 4, 5]], keys=["b", "a"])
        assert again == first[3:] + first[:3]
        lopsided = pool.map(list(range(8)), lambda item, why: why, chunks=[[i] for i in range(8)], keys=["a"] * 8)
        assert set(lopsided) == set(first)  # the worker with no claim took some of the other's chunks
    finally:
        pool.close()
    assert pool.affinity == {}


def test_grade_off_the_main_thread() -> None:
    box: list = []
    thread = threading.Thread(target=lambda: box.append(grade("math", "<think>a</think>\\boxed{\\pi/2}", "\\frac{\\pi}{2}")))
    thread.start()
    thread.join(60)
    assert box and box[0].verdict == "correct" and box[0].detail["rule"] == "math_verify"


def test_cache_and_duplicates() -> None:
    gold, pred = "\\frac{3\\pi}{7}", "<think>a</think>\\boxed{6\\pi/14}"
    rows = [{"domain": "math", "completion": pred, "reference": gold}] * 3
    first = grade_rows(rows, workers=1)
    assert [r["verdict"] for r in first] == ["correct"] * 3
    assert [r["verdict_detail"].get("cached", False) for r in first] == [False, True, True]
    again = grade_rows(rows[:1], workers=1)
    assert again[0]["verdict_detail"]["cached"] is True


def test_order_kept_and_rows_copied() -> None:
    rows = [{"domain": "math", "completion": f"<think>a</think>\\boxed{{{i}/2}}", "reference": str(i / 2), "id": i}
            for i in range(12)]
    out = grade_rows(rows, workers=2)
    assert [r["id"] for r in out] == list(range(12))
    assert all(r["verdict"] == "correct" for r in out)
    assert "verdict" not in rows[0]


def test_workers_are_kept_for_the_next_batch() -> None:
    from branchmerge.verify import grader

    def batch(tag: str) -> list[dict]:
        # \ln is outside every fast path: each pair goes to the workers
        rows = [{"domain": "math", "completion": f"<think>a</think>\\boxed{{{tag}+\\ln x}}", "reference": f"\\ln x+{tag}{k}"}
                for k in range(3)]
        return grade_rows(rows, workers=2, timeout=4)

    batch("7")
    pids = {s.proc.pid for s in grader._POOLS[(2, 4)].slots}
    out = batch("9")
    assert [r["verdict"] for r in out] == ["incorrect"] * 3
    assert {s.proc.pid for s in grader._POOLS[(2, 4)].slots} == pids


def test_concurrent_threads_share_or_spare_the_pool() -> None:
    results: dict[int, list[str]] = {}

    def work(n: int) -> None:
        rows = [{"domain": "math", "completion": f"<think>a</think>\\boxed{{{n}\\pi/{k}}}",
                 "reference": f"\\frac{{{n}\\pi}}{{{k}}}"} for k in range(1, 5)]
        results[n] = [r["verdict"] for r in grade_rows(rows, workers=2)]

    threads = [threading.Thread(target=work, args=(n,)) for n in (3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {3: ["correct"] * 4, 5: ["correct"] * 4}


def test_equal_only_by_rounding_is_flagged() -> None:
    rounded = grade("math", "<think>a</think>\\boxed{0.3333333}", "\\frac{1}{3}")
    assert rounded.verdict == "correct" and rounded.detail["tolerance"] is True
    exact = grade("math", "<think>a</think>\\boxed{\\sqrt{4}}", "2.0")
    assert exact.verdict == "correct" and "tolerance" not in exact.detail


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("Final Answer: The final answer is $5$. I hope it is correct.", ("5", "final_answer")),
        ("The final answer is: 7", ("7", "final_answer")),
        ("Answer: 3\nOn reflection, the answer: 4", ("4", "answer")),
        ("**Final Answer**\n\\[\n\\boxed{\\dfrac{9}{7}}\n\\]", ("\\dfrac{9}{7}", "boxed")),
        ("So $x=\\boxed{\\frac{\\sqrt{3}}{2}.}$", ("\\frac{\\sqrt{3}}{2}", "boxed")),
        ("We get $\\boxed{1}$ and $\\boxed{2}$", ("1, 2", "boxed_multi")),
        ("Nothing to see", ("", "none")),
    ],
)
def test_math_extraction_rules(segment: str, expected: tuple[str, str]) -> None:
    found = extract.math_answer(segment)
    assert (found.text, found.rule) == expected


# ---- issue 14: extraction chain, number shapes, other projects' suites ----------------------------

THINK = "<think>\nLet me work through it.\n</think>\n\n"


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        # answers stated in prose, no box
        ("Answer $9$", ("9", "answer")),
        ("Therefore $x \\geq 5$ is the solution.", ("x \\geq 5", "last_expression")),
        ("The volume of $ABCDEFGH$ is 120", ("120", "last_expression")),
        ("Final Answer: The largest $n$ is 34.", ("34", "final_answer")),
        ("The answer is 2, 3, and 5.", ("2, 3, 5", "answer")),
        ("Answer: (1, 2)", ("(1, 2)", "answer")),
        ("The answer is not 5; it is 6.", ("6", "last_expression")),
        ("The probability is $\\frac{1}{6}$, or about 16.7%.", ("\\frac{1}{6}", "last_expression")),
        # several boxes joined by short connective text are one answer
        ("$\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}$", ("-2, 1", "boxed_multi")),
        ("\\boxed{3}\\text{ for part (a) and }\\boxed{5}", ("3, 5", "boxed_multi")),
        ("\\( y_1 = \\boxed{2} \\) and \\( y_2 = \\boxed{7} \\)", ("2, 7", "boxed_multi")),
        ("First $\\boxed{4}$.\n\nNow part 2 is different: $\\boxed{5}$", ("5", "boxed")),
        # a box in the working, then a different explicit final statement
        ("This part is \\boxed{255}. Adding all parts, the final answer is $10,455$.",
         ("10,455", "final_answer_after_box")),
        ("The answer is $7$. So \\boxed{8}", ("8", "boxed")),  # a bare "answer" does not outrank a box
        # other languages
        ("最终答案是 $42$。", ("42", "final_answer")),
        ("所以答案是12。", ("12", "answer")),
        ("Donc, la réponse finale est $7$.", ("7", "final_answer")),
        ("الإجابة النهائية هي 7", ("7", "final_answer")),
        ("अंतिम उत्तर 5 है", ("5", "final_answer")),
        ("Die Antwort ist 3,5.", ("3,5", "answer")),
    ],
)
def test_issue14_extraction_chain(segment: str, expected: tuple[str, str]) -> None:
    found = extract.math_answer(segment)
    assert (found.text, found.rule) == expected


@pytest.mark.parametrize(
    ("gold", "answer", "verdict"),
    [
        ("1000.99", "La réponse est 1000,99 €.", "correct"),  # a comma that can only be decimal
        ("3.5", "Die Antwort ist 3,5.", "correct"),
        ("1000", "The total is $1,000.", "correct"),  # thousands separator
        ("1", "The total is $1,000.", "incorrect"),
        ("10455", "the final answer is $10,455$.", "correct"),
        ("-2, 1", "The roots are $-2,1$.", "correct"),  # a list, by the gold's shape
        ("-2.1", "The roots are $-2, 1$.", "incorrect"),
        ("-2.1", "The answer is $-2,1$.", "correct"),  # one number in the gold: a decimal comma
        ("1000", "\\boxed{1\\,000}", "correct"),  # thin space between digit groups
        ("\\frac{1}{3}", "\\boxed{0.\\overline{3}}", "correct"),  # repeating decimal
        ("\\frac{1}{2004!}", "\\boxed{\\frac{1}{2006!}}", "incorrect"),  # exact rationals, not rounding
        ("0.25", "The answer is 25%.", "correct"),
        ("p = 5, q = 2 \\quad \\text{and} \\quad p = 7, q = 2", "$p=5,q=2;p=7,q=2$", "correct"),
        ("5", "The answer is not 5; it is 6.", "incorrect"),
        ("2", "The answer is 2, 3, and 5.", "incorrect"),  # math-verify reads 2 here
        # mixed numbers in plain text are one value; a fraction that is not proper makes no value
        ("\\frac{5}{2}", "She has 2 1/2 cups left, so the answer is 2 1/2.", "correct"),
        ("2", "The answer is 2 1/2.", "incorrect"),
        ("2 1/2", "\\boxed{\\frac{5}{2}}", "correct"),  # a mixed-number gold
        ("-\\frac{7}{4}", "x = -1 3/4", "correct"),
        ("0.025", "It grew by 2 1/2%.", "correct"),
        ("3", "The answer is 2 4/4.", "incorrect"),
        ("11", "We get 3 1/2 then 11.", "correct"),
        ("\\frac{1}{2}", "From 11.0 1/2 we keep 1/2.", "correct"),  # a decimal whole part: not mixed
    ],
)
def test_issue14_number_shapes_and_verdicts(gold: str, answer: str, verdict: str) -> None:
    got = grade("math", THINK + answer, gold)
    assert got.verdict == verdict, got.detail
    assert got.detail["extract_rule"] and got.detail["rule"]


def _peer_cases() -> list[dict]:
    path = Path(__file__).parent / "data/verify/peer_suites.jsonl"
    return [c for c in map(json.loads, path.open(encoding="utf-8")) if c["default_settings"]]


def test_peer_suites_at_default_settings() -> None:
    """Other projects' own expectations (Math-Verify, lighteval, open-r1 test suites, taken as
    data): at default settings we agree with their labels at least as often as plain
    ``verify(parse(gold), parse(pred))`` does, and never pass what they fail."""
    from math_verify import parse, verify

    cases = _peer_cases()
    assert len(cases) >= 450 and {c["suite"] for c in cases} == {"Math-Verify", "lighteval", "open-r1"}
    rows = [{"domain": c["domain"], "completion": THINK + c["pred"], "reference": c["gold"]} for c in cases]
    ours = [r["verdict"] == "correct" for r in grade_rows(rows, workers=2)]
    plain = [bool(verify(parse(c["gold_raw"]), parse(c["pred"]))) for c in cases]
    expected = [bool(c["expected"]) for c in cases]
    false_pos = [c["id"] for c, got, want in zip(cases, ours, expected) if got and not want]
    assert not false_pos, false_pos
    agree_ours = sum(a == b for a, b in zip(ours, expected))
    agree_plain = sum(a == b for a, b in zip(plain, expected))
    missed = [(c["id"], c["gold"], c["pred"][-80:]) for c, got, want in zip(cases, ours, expected) if want and not got]
    assert agree_ours >= agree_plain, missed
    # the labels we knowingly contradict (never by passing what a suite fails); nothing else may
    # be missed
    assert sorted(m[0] for m in missed) == sorted(KNOWN_CONTRADICTIONS), missed
    holdout = [(c["id"], got, want) for c, got, want in zip(cases, ours, expected) if c["split"] == "holdout"]
    assert len(holdout) >= 100 and all(got == want or i in KNOWN_CONTRADICTIONS for i, got, want in holdout)


KNOWN_CONTRADICTIONS = {
    # "1 + 1/e" is not "1 - 1/e": Math-Verify's test_yujianll expects equal, an artefact of how its
    # parser reads \mathrm{e}
    "Math-Verify-be84f6d66a": "1 + 1/e vs 1 - 1/e",
    # "11\n5/6" is 5 for Math-Verify's parser (a test that pins that behaviour, not an answer): the
    # last value written is 5/6
    "Math-Verify-1e72723169": "11\\n5/6 vs 5", "Math-Verify-c8ba94bc0f": "11\\r\\n5/6 vs 5",
    # a final-answer statement whose LaTeX math-verify cannot parse, then a stray "42" or "1/2":
    # Math-Verify falls back to the stray value; we grade what the statement says (incorrect, not
    # unparsed: the answer was given), so a parser failure never turns into a pass on leftovers
    "Math-Verify-6123de69c3": "Final answer is $\\sum..$. I hope. 42",
    "Math-Verify-9426d7901c": "Final answer is $\\sum..$. I hope. $42$",
    "Math-Verify-dff8ffdac2": "Final answer is $\\sum..$. I hope. 1/2",
    # "$42$ and $\\sum..$" is one two-part answer for us; Math-Verify drops the part it cannot parse
    "Math-Verify-5ee5303895": "$42$ and $\\sum..$ vs 42",
}
