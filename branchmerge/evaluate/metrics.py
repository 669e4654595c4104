"""Scores and lengths from graded generation rows: everything summary.json reports.

All metrics come from the samples actually stored (never from a configured n), grouped by problem:
- pass@1: mean over problems of c_i / n_i (DeepSeek's "pass@1 averaged over k samples");
- pass@k: Chen et al.'s unbiased estimator 1 - C(n-c, k) / C(n, k), per problem then averaged,
  for every k up to the smallest n_i;
- cons@n: majority vote per problem. Correct answers are all equivalent to the gold and so form
  one vote; incorrect ones vote by their extracted answer; unparsed/truncated/error samples do not
  vote; a tie goes to the answer seen first;
- pass@1_se: sampling (seed) standard error, sqrt(sum_i p_i(1-p_i)/(n_i-1)) / N. A problem with one
  sample has no within-problem variance to estimate, so it gets the pooled p(1-p) (with n = 1 everywhere
  this is the binomial sqrt(p(1-p)/N)). pass@1_se_problems is the between-problem std / sqrt(N);
- pass@1_ci95: percentile bootstrap over problems (seeded, so a rescore reproduces it).
Token statistics count generated tokens as the engine reported them (completion_tokens).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def is_correct(row: dict[str, Any]) -> bool:
    return row.get("verdict") == "correct"


def group_by_problem(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["id"]].append(row)
    for samples in groups.values():
        samples.sort(key=lambda r: r["sample_idx"])
    return dict(groups)


def vote_key(row: dict[str, Any]) -> str | None:
    """What an incorrect sample votes for: its extracted answer (None: it does not vote)."""
    if row.get("verdict") != "incorrect":
        return None
    detail = row.get("verdict_detail") or {}
    for key in ("extracted", "pred", "prediction", "letter", "answer"):
        value = detail.get(key)
        if value not in (None, "", []):
            return " ".join(str(value).split())
    return " ".join((row.get("answer") or "").split()) or None


def majority_correct(samples: Sequence[dict[str, Any]]) -> bool:
    counts: dict[str, int] = {}
    for row in samples:
        key = "\0correct" if is_correct(row) else vote_key(row)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1  # dicts keep first-seen order: ties go to the first
    if not counts:
        return False
    return max(counts, key=counts.__getitem__) == "\0correct"


def bootstrap_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[float]:
    """95% percentile interval of the mean, resampling problems with replacement."""
    if len(values) == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def length_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "count": int(arr.size),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "max": float(arr.max()),
    }


def _tokens(row: dict[str, Any], field: str) -> float | None:
    value = row.get(field)
    return None if value is None else float(value)


def token_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """completion / thinking / answer tokens over all samples; completion tokens of correct vs incorrect."""
    def collect(field: str, keep=lambda r: True) -> list[float]:
        return [v for r in rows if keep(r) and (v := _tokens(r, field)) is not None]

    return {
        "completion": length_stats(collect("completion_tokens")),
        "thinking": length_stats(collect("thinking_tokens")),
        "answer": length_stats(collect("answer_tokens")),
        "correct": length_stats(collect("completion_tokens", is_correct)),
        "incorrect": length_stats(collect("completion_tokens", lambda r: not is_correct(r))),
    }


def _rate(rows: Sequence[dict[str, Any]], test) -> float:
    return sum(1 for r in rows if test(r)) / len(rows) if rows else 0.0


def score(rows: Sequence[dict[str, Any]], domain: str = "math") -> dict[str, Any]:
    """metrics, tokens and per_problem for summary.json."""
    groups = group_by_problem(rows)
    ids = list(groups)
    ns = np.array([len(groups[i]) for i in ids], dtype=float)
    cs = np.array([sum(is_correct(r) for r in groups[i]) for i in ids], dtype=float)
    p = cs / ns if len(ids) else np.zeros(0)
    N = len(ids)
    metrics: dict[str, Any] = {"pass@1": float(p.mean()) if N else 0.0}
    pooled = metrics["pass@1"] * (1 - metrics["pass@1"])
    per_var = np.where(ns > 1, p * (1 - p) / np.maximum(ns - 1, 1), pooled)
    metrics["pass@1_se"] = float(math.sqrt(per_var.sum()) / N) if N else 0.0
    metrics["pass@1_se_problems"] = float(p.std(ddof=1) / math.sqrt(N)) if N > 1 else 0.0
    metrics["pass@1_ci95"] = bootstrap_ci(p)
    k_max = int(ns.min()) if N else 0
    metrics["pass@k"] = {
        str(k): float(np.mean([pass_at_k(int(n), int(c), k) for n, c in zip(ns, cs)])) for k in range(1, k_max + 1)
    }
    metrics["cons@n"] = float(np.mean([majority_correct(groups[i]) for i in ids])) if N else 0.0
    metrics["truncated_rate"] = _rate(
        rows, lambda r: r.get("verdict") == "truncated" or r.get("finish_reason") == "length"
    )
    metrics["unparsed_rate"] = _rate(rows, lambda r: r.get("verdict") == "unparsed")
    metrics["error_rate"] = _rate(rows, lambda r: r.get("verdict") == "error")
    if domain == "science":
        metrics.update(_strict_lenient(groups))
    per_problem = [
        {
            "id": i,
            "n": int(n),
            "correct": int(c),
            "mean_tokens": _mean_tokens(groups[i]),
            "majority_correct": bool(majority_correct(groups[i])),
            "verdicts": _counts(r.get("verdict") for r in groups[i]),
        }
        for i, n, c in zip(ids, ns, cs)
    ]
    return {"metrics": metrics, "tokens": token_stats(rows), "per_problem": per_problem}


def _mean_tokens(samples: Sequence[dict[str, Any]]) -> float:
    toks = [t for r in samples if (t := _tokens(r, "completion_tokens")) is not None]
    return float(np.mean(toks)) if toks else 0.0


def _counts(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _strict_lenient(groups: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """GPQA: the grader stores both extractions per sample (verdict_detail.strict / .lenient);
    strict takes only anchored answers, lenient also looser ones (reference/evaluation.md §1.4)."""

    def mode_correct(row: dict[str, Any], mode: str) -> bool:
        entry = (row.get("verdict_detail") or {}).get(mode)
        return entry.get("verdict") == "correct" if isinstance(entry, dict) else is_correct(row)

    def mean_over(mode: str) -> float:
        vals = [sum(mode_correct(r, mode) for r in s) / len(s) for s in groups.values()]
        return float(np.mean(vals)) if vals else 0.0

    return {"pass@1_strict": mean_over("strict"), "pass@1_lenient": mean_over("lenient")}
