"""Per-problem comparison across models: which problems a merge gained or lost versus a branch.

A problem counts as *solved* by a model when at least half of its samples are correct; the
pass@1 difference between two models comes with a paired bootstrap CI over their common problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from branchmerge.report.load import EvalResult

SOLVED = 0.5
BOOTSTRAP = 2000


def problem_rates(result: EvalResult) -> dict[str, tuple[int, int]]:
    """problem id -> (correct, n), from the summary's ``per_problem`` or else from the samples."""
    rates: dict[str, tuple[int, int]] = {}
    for row in result.summary.per_problem:
        if isinstance(row, dict) and "id" in row:
            rates[str(row["id"])] = (int(row.get("correct", 0)), int(row.get("n", 0)))
    if rates:
        return rates
    for sample in result.samples:
        correct, n = rates.get(str(sample["id"]), (0, 0))
        rates[str(sample["id"])] = (correct + (sample.get("verdict") == "correct"), n + 1)
    return rates


@dataclass
class Pair:
    model: str
    other: str
    gained: list[str]  # solved by ``model``, not by ``other``
    lost: list[str]  # solved by ``other``, not by ``model``
    delta: float  # pass@1 difference on the common problems, in 0..1
    ci: tuple[float, float]
    common: int


def compare(a_model: str, a: dict[str, tuple[int, int]], b_model: str, b: dict[str, tuple[int, int]],
            seed: int = 0) -> Pair:
    common = [pid for pid in a if pid in b and a[pid][1] and b[pid][1]]
    ra = np.array([a[p][0] / a[p][1] for p in common])
    rb = np.array([b[p][0] / b[p][1] for p in common])
    gained = [p for p, x, y in zip(common, ra, rb) if x >= SOLVED > y]
    lost = [p for p, x, y in zip(common, ra, rb) if y >= SOLVED > x]
    if not common:
        return Pair(a_model, b_model, [], [], 0.0, (0.0, 0.0), 0)
    diff = ra - rb
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(BOOTSTRAP, len(diff)))
    boots = diff[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Pair(a_model, b_model, gained, lost, float(diff.mean()), (float(lo), float(hi)), len(common))
