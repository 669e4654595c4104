"""The models x benchmarks summary shared by the markdown and HTML reports.

A column is a (bench, bench_version) pair: results of different versions of one benchmark are
never averaged or put in one column, because a changed prompt or problem set changes the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from branchmerge.console import fmt_tokens as console_tokens
from branchmerge.report.load import EvalResult
from branchmerge.report.reference import Published

BENCH_NAMES = {
    "aime24": "AIME 2024",
    "aime25": "AIME 2025",
    "amc23": "AMC 2023",
    "math500": "MATH-500",
    "gpqa_diamond": "GPQA-Diamond",
    "livecodebench": "LiveCodeBench",
}


@dataclass(frozen=True)
class Column:
    bench: str
    version: str
    label: str

    @property
    def key(self) -> str:
        """A stable id for anchors and lookups."""
        return f"{self.bench}@{self.version}" if self.version else self.bench

    @property
    def is_gpqa(self) -> bool:
        return "gpqa" in self.bench.lower()


@dataclass
class Row:
    label: str
    published: bool = False
    citation: str = ""
    cells: dict[str, EvalResult | tuple[float, float | None]] = field(default_factory=dict)


@dataclass
class Summary:
    columns: list[Column]
    rows: list[Row]

    def version_notes(self) -> list[str]:
        """One line per benchmark measured under several versions (its columns stay apart)."""
        notes = []
        for bench in dict.fromkeys(c.bench for c in self.columns):
            versions = [c.version or "unversioned" for c in self.columns if c.bench == bench]
            if len(versions) > 1:
                notes.append(f"{BENCH_NAMES.get(bench, bench)} was run under {len(versions)} benchmark versions "
                             f"({', '.join(versions)}): each has its own column; their numbers are not comparable "
                             "and are never averaged.")
        return notes

    def measured(self) -> list[Row]:
        return [row for row in self.rows if not row.published]

    def results(self, column: Column) -> list[EvalResult]:
        """The measured results in one column, in row order."""
        return [row.cells[column.key] for row in self.measured() if column.key in row.cells]  # type: ignore[misc]


def build_summary(results: list[EvalResult], published: list[tuple[Published, str]]) -> Summary:
    columns = _columns(results)
    by_key = {(c.bench, c.version): c for c in columns}
    rows: dict[str, Row] = {}
    for result in results:
        row = rows.setdefault(result.model, Row(result.model))
        row.cells[by_key[(result.bench, result.bench_version)].key] = result
    out = list(rows.values())
    for ref, citation in published:
        row = Row(ref.model, published=True, citation=citation)
        for column in columns:
            if column.bench in ref.cells:
                row.cells[column.key] = ref.cells[column.bench]
        out.append(row)
    return Summary(columns=columns, rows=out)


def _columns(results: list[EvalResult]) -> list[Column]:
    pairs: list[tuple[str, str]] = []
    for result in results:
        if (result.bench, result.bench_version) not in pairs:
            pairs.append((result.bench, result.bench_version))
    versions: dict[str, int] = {}
    for bench, _ in pairs:
        versions[bench] = versions.get(bench, 0) + 1
    columns = []
    for bench, version in pairs:
        label = BENCH_NAMES.get(bench, bench)
        if versions[bench] > 1:
            label += f" [{version or 'unversioned'}]"
        columns.append(Column(bench=bench, version=version, label=label))
    return columns


def fmt_tokens(tokens: float | None) -> str:
    """11800 -> '11.8k', as in the paper's Table 1 (empty when unknown)."""
    return "" if tokens is None else console_tokens(tokens)


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def cell_values(cell: EvalResult | tuple[float, float | None] | None) -> tuple[float | None, float | None]:
    """(pass@1 in 0..1, mean completion tokens) of a measured or published cell."""
    if cell is None:
        return None, None
    if isinstance(cell, EvalResult):
        return float(cell.metrics["pass@1"]), mean_tokens(cell)
    return cell[0] / 100, cell[1]


def cell_text(cell: EvalResult | tuple[float, float | None] | None) -> str:
    """The paper's cell: '78.1 (11.8k)'; '–' where there is no result."""
    pass1, tokens = cell_values(cell)
    if pass1 is None:
        return "–"
    return f"{fmt_pct(pass1)} ({fmt_tokens(tokens)})" if tokens is not None else fmt_pct(pass1)


def mean_tokens(result: EvalResult) -> float | None:
    completion = result.summary.tokens.get("completion") or {}
    value = completion.get("mean")
    return float(value) if isinstance(value, (int, float)) else None


def ci95(result: EvalResult) -> tuple[float, float] | None:
    ci = result.metrics.get("pass@1_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _fmt(value: Any, fmt: Any) -> str:
    return fmt(value) if isinstance(value, (int, float)) else "–"


def detail(result: EvalResult) -> dict[str, Any]:
    """The per-(model, bench) numbers behind a cell, formatted for both reports."""
    m = result.metrics
    completion = result.summary.tokens.get("completion") or {}
    ci = ci95(result)
    return {
        "n": "?" if result.summary.n is None else result.summary.n,
        "problems": len(result.summary.per_problem) if result.summary.num_problems is None
        else result.summary.num_problems,
        "pass1": fmt_pct(m["pass@1"]),
        "se": _fmt(m.get("pass@1_se"), lambda v: f"{100 * v:.1f}"),
        "ci": f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "–",
        "cons": _fmt(m.get("cons@n"), fmt_pct),
        "truncated": _fmt(m.get("truncated_rate"), fmt_pct),
        "unparsed": _fmt(m.get("unparsed_rate"), fmt_pct),
        "strict_lenient": (f"{fmt_pct(m['pass@1_strict'])} / {fmt_pct(m['pass@1_lenient'])}"
                           if isinstance(m.get("pass@1_strict"), (int, float))
                           and isinstance(m.get("pass@1_lenient"), (int, float)) else "–"),
        "mean": _fmt(completion.get("mean"), fmt_tokens),
        "median": _fmt(completion.get("median"), fmt_tokens),
        "p90": _fmt(completion.get("p90"), fmt_tokens),
        "max_tokens": _fmt(result.max_tokens, lambda v: str(int(v))),
        "version": result.bench_version or "–",
    }
