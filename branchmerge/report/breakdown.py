"""Pass@1 split by problem metadata (MATH level and subject, GPQA domain, LiveCodeBench difficulty
and platform): whatever scalar ``meta`` field takes a handful of values across the problems."""

from __future__ import annotations

from typing import Any

from branchmerge.report.load import EvalResult

MAX_GROUPS = 12


def _problem_meta(results: list[EvalResult]) -> dict[str, dict[str, Any]]:
    meta: dict[str, dict[str, Any]] = {}
    for result in results:
        for sample in result.samples:
            if isinstance(sample.get("meta"), dict):
                meta.setdefault(str(sample["id"]), sample["meta"])
    return meta


def breakdowns(results: list[EvalResult]) -> list[dict[str, Any]]:
    """For each usable meta key: groups with their problem count and each model's pass@1 (0..1)."""
    meta = _problem_meta(results)
    keys = sorted({k for m in meta.values() for k, v in m.items() if isinstance(v, (str, int, bool))})
    rates = {}
    for r in results:
        per: dict[str, list[int]] = {}
        for s in r.samples:
            c_n = per.setdefault(str(s["id"]), [0, 0])
            c_n[0] += s.get("verdict") == "correct"
            c_n[1] += 1
        rates[r.model] = per
    out = []
    for key in keys:
        groups: dict[str, list[str]] = {}
        for pid, m in meta.items():
            if isinstance(m.get(key), (str, int, bool)):
                groups.setdefault(str(m[key]), []).append(pid)
        covered = sum(map(len, groups.values()))
        if not 2 <= len(groups) <= MAX_GROUPS or len(groups) == covered or covered < len(meta) / 2:
            continue  # one value says nothing; a value per problem is an id or a date, not a category
        rows = []
        for value in sorted(groups, key=lambda v: (-len(groups[v]), v)):
            cells = {}
            for model, per in rates.items():
                solved = [per[p][0] / per[p][1] for p in groups[value] if p in per and per[p][1]]
                cells[model] = sum(solved) / len(solved) if solved else None
            rows.append({"value": value, "problems": len(groups[value]), "pass1": cells})
        out.append({"key": key, "rows": rows})
    return out
