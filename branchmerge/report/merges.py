"""Plain statements of whether each merge beats the branches it was made from.

A merge output's ``stats.json`` lists its input models; merges of merges are followed back to the
branches. When the merge and its branches were all evaluated (matched by model path), the report
says in one sentence whether the merge beats every branch on the mean over the benchmarks they
share (the "union of domains" the Branch-Merge method is about), and names the branches it does
not beat. The statement follows the numbers, whatever they are.
"""

from __future__ import annotations

from pathlib import Path

from branchmerge.contracts import resolve_from
from branchmerge.report.load import Inputs
from branchmerge.report.table import Column, Row, Summary


def _key(path: object) -> str:
    return str(Path(str(path)).expanduser().resolve())


def _mean(row: Row, columns: list[Column]) -> float:
    return 100 * sum(row.cells[c.key].metrics["pass@1"] for c in columns) / len(columns)  # type: ignore[union-attr]


def merge_statements(summary: Summary, inputs: Inputs) -> list[str]:
    merges = {_key(s.path): s for s in inputs.stages if s.kind == "merge"}
    label_of = {}
    for result in inputs.evaluations:
        if result.model_path is not None:
            label_of[_key(result.model_path)] = result.model

    def leaves(path: str, seen: frozenset[str] = frozenset()) -> list[str]:
        stage = merges.get(path)
        if stage is None or path in seen:
            return [path]
        out: list[str] = []
        for item in stage.stats.inputs:
            out += leaves(_key(resolve_from(item.path, stage.path)), seen | {path})
        return out

    rows = {row.label: row for row in summary.measured()}
    statements = []
    for path, stage in merges.items():
        merged = label_of.get(path)
        branches = [label_of[p] for p in dict.fromkeys(leaves(path)) if p in label_of and p != path]
        if merged is None or len(branches) < 2 or merged not in rows:
            continue
        columns = [c for c in summary.columns
                   if all(c.key in rows[m].cells for m in (merged, *branches) if m in rows)]
        if not columns:
            continue

        m = _mean(rows[merged], columns)
        scores = {b: _mean(rows[b], columns) for b in branches}
        behind = [b for b, s in scores.items() if s >= m]
        benches = ", ".join(c.label for c in columns)
        listing = ", ".join(f"{b} {s:.1f}" for b, s in scores.items())
        verdict = ("it beats every branch" if not behind
                   else f"it does not beat {', '.join(behind)}")
        method = stage.stats.method
        statements.append(
            f"{merged} ({method} of {', '.join(branches)}): mean pass@1 over {benches} is {m:.1f} vs "
            f"{listing}; on this union of domains {verdict}."
        )
    return statements
