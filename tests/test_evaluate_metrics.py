"""pass@k, cons@n, standard errors, token statistics and the paper's table cell, on stored rows."""

from __future__ import annotations

import math

import pytest

from branchmerge.benchmarks.registry import get_spec
from branchmerge.evaluate.metrics import majority_correct, pass_at_k, score
from branchmerge.evaluate.run import cell, summarize


def row(pid, idx, verdict, tokens=100, extracted=None, thinking=None, answer=None, finish="stop"):
    return {"id": pid, "sample_idx": idx, "verdict": verdict, "completion_tokens": tokens, "finish_reason": finish,
            "thinking_tokens": thinking, "answer_tokens": answer,
            "verdict_detail": {"extracted": extracted} if extracted is not None else {}}


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (4, 2, 1, 0.5),
    (4, 2, 2, 1 - 1 / 6),              # 1 - C(2,2)/C(4,2)
    (5, 1, 2, 1 - 6 / 10),             # 1 - C(4,2)/C(5,2)
    (10, 3, 4, 1 - 35 / 210),          # 1 - C(7,4)/C(10,4)
    (16, 0, 8, 0.0),
    (16, 16, 1, 1.0),
    (8, 5, 4, 1.0),                    # n - c < k: every 4-subset holds a correct one
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)


def test_score_pass_at_k_and_rates():
    rows = (
        [row("p1", i, v) for i, v in enumerate(["correct", "incorrect", "correct", "unparsed"])]
        + [row("p2", i, v, finish="length" if v == "truncated" else "stop")
           for i, v in enumerate(["truncated", "incorrect", "incorrect", "error"])]
        + [row("p3", i, "correct") for i in range(4)]
    )
    m = score(rows)["metrics"]
    assert m["pass@1"] == pytest.approx((2 / 4 + 0 + 1) / 3)
    assert m["pass@k"]["2"] == pytest.approx((1 - 1 / 6 + 0 + 1) / 3)
    assert m["pass@k"]["4"] == pytest.approx((1 + 0 + 1) / 3)
    assert set(m["pass@k"]) == {"1", "2", "3", "4"}
    assert m["truncated_rate"] == pytest.approx(1 / 12)
    assert m["unparsed_rate"] == pytest.approx(1 / 12)
    assert m["error_rate"] == pytest.approx(1 / 12)
    # seed SE: sqrt(sum p(1-p)/(n-1)) / N with p = (0.5, 0, 1)
    assert m["pass@1_se"] == pytest.approx(math.sqrt(0.25 / 3) / 3)
    lo, hi = m["pass@1_ci95"]
    assert 0 <= lo <= m["pass@1"] <= hi <= 1


def test_standard_error_with_one_sample_per_problem_is_binomial():
    rows = [row(f"p{i}", 0, "correct" if i < 6 else "incorrect") for i in range(10)]
    m = score(rows)["metrics"]
    assert m["pass@1"] == pytest.approx(0.6)
    assert m["pass@1_se"] == pytest.approx(math.sqrt(0.6 * 0.4 / 10))
    assert m["pass@k"] == {"1": pytest.approx(0.6)}


def test_majority_vote():
    # two wrong samples agree on 7, only one correct -> the vote is wrong
    assert not majority_correct([row("p", 0, "correct"), row("p", 1, "incorrect", extracted="7"),
                                 row("p", 2, "incorrect", extracted=" 7")])
    # wrong samples split their votes -> the correct answer wins with fewer than half
    assert majority_correct([row("p", 0, "correct"), row("p", 1, "correct"), row("p", 2, "incorrect", extracted="3"),
                             row("p", 3, "incorrect", extracted="4"), row("p", 4, "incorrect", extracted="5")])
    # unparsed and truncated samples do not vote
    assert majority_correct([row("p", 0, "correct"), row("p", 1, "unparsed"), row("p", 2, "truncated"),
                             row("p", 3, "unparsed")])
    # a tie goes to the answer seen first
    assert not majority_correct([row("p", 0, "incorrect", extracted="9"), row("p", 1, "correct")])
    assert majority_correct([row("p", 0, "correct"), row("p", 1, "incorrect", extracted="9")])
    assert not majority_correct([row("p", 0, "unparsed")])


def test_token_statistics_split_and_correct_vs_incorrect():
    rows = [row("p", 0, "correct", tokens=100, thinking=90, answer=10),
            row("p", 1, "correct", tokens=300, thinking=280, answer=20),
            row("p", 2, "incorrect", tokens=1000, thinking=1000, answer=0),
            row("q", 0, "truncated", tokens=2000, thinking=2000, answer=0)]
    tokens = score(rows)["tokens"]
    assert tokens["completion"]["mean"] == pytest.approx(850)
    assert tokens["completion"]["median"] == pytest.approx(650)
    assert tokens["completion"]["max"] == 2000
    assert tokens["completion"]["p90"] == pytest.approx(1700)  # numpy linear interpolation
    assert tokens["thinking"]["mean"] == pytest.approx((90 + 280 + 1000 + 2000) / 4)
    assert tokens["answer"]["mean"] == pytest.approx(7.5)
    assert tokens["correct"]["mean"] == pytest.approx(200) and tokens["correct"]["count"] == 2
    assert tokens["incorrect"]["mean"] == pytest.approx(1500)


def test_per_problem_rows():
    per = score([row("a", 0, "correct", tokens=10), row("a", 1, "incorrect", tokens=30, extracted="x"),
                 row("b", 0, "incorrect", tokens=5, extracted="y")])["per_problem"]
    assert per[0] == {"id": "a", "n": 2, "correct": 1, "mean_tokens": 20.0, "majority_correct": True,
                      "verdicts": {"correct": 1, "incorrect": 1}}
    assert per[1]["correct"] == 0 and per[1]["n"] == 1


def test_science_strict_and_lenient():
    def sci(i, strict, lenient):
        return {"id": "g", "sample_idx": i, "verdict": strict, "completion_tokens": 1,
                "verdict_detail": {"strict": {"verdict": strict}, "lenient": {"verdict": lenient}}}

    m = score([sci(0, "correct", "correct"), sci(1, "unparsed", "correct"), sci(2, "incorrect", "incorrect"),
               sci(3, "unparsed", "unparsed")], "science")["metrics"]
    assert m["pass@1_strict"] == pytest.approx(0.25)
    assert m["pass@1_lenient"] == pytest.approx(0.5)


def test_paper_cell_from_summary():
    # 30 problems x 16 samples with 375 correct -> 78.125 %; mean 11,800 tokens -> "78.1 (11.8k)"
    rows = []
    correct_left = 375
    for p in range(30):
        for s in range(16):
            verdict = "correct" if correct_left > 0 else "incorrect"
            correct_left -= verdict == "correct"
            rows.append(row(f"p{p}", s, verdict, tokens=11_800 + (50 if s % 2 else -50), extracted="0"))
    summary = summarize(get_spec("aime24"), rows, {"bench_version": "x@1", "model": "m", "sampling": {"n": 16}})
    assert summary["kind"] == "evaluation" and summary["n"] == 16
    assert summary["num_problems"] == 30 and summary["num_samples"] == 480
    assert cell(summary) == "78.1 (11.8k)"
