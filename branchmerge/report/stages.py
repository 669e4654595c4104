"""What the report shows of the curation, training and merge stages, read from their typed stats."""

from __future__ import annotations

from typing import Any

from branchmerge.contracts import CurationStats


def funnel(stats: CurationStats) -> list[tuple[str, float]]:
    """(stage, rows left after it) in pipeline order."""
    return [(s.stage, float(s.n_out)) for s in stats.funnel]


def reasons(stats: CurationStats) -> list[tuple[str, float]]:
    """(stage: reject reason, rows) over the whole run, largest first."""
    return [(name, float(n)) for name, n in stats.reasons()]


def flatten(obj: Any, prefix: str = "", limit: int = 300) -> list[tuple[str, str]]:
    """Scalar leaves as ('a.b.c', value) pairs, long lists summarised, at most ``limit`` rows."""
    if hasattr(obj, "dump"):
        obj = obj.dump()
    rows: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list) and (len(value) > 12 or any(isinstance(v, (dict, list)) for v in value)):
            rows.append((path, f"[{len(value)} items]"))
        else:
            text = str(value)
            rows.append((path, text if len(text) <= 300 else text[:300] + "…"))

    walk(obj, prefix)
    return rows


def loss_history(lines: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(step, loss) points from the trainer's log lines (``metrics.jsonl``)."""
    return [
        (float(e["step"]), float(e["loss"]))
        for e in lines
        if isinstance(e.get("step"), (int, float)) and isinstance(e.get("loss"), (int, float))
    ]


def length_histogram(stats: CurationStats) -> tuple[list[float], list[int], str] | None:
    """(bin edges, counts, what was measured) from curation's ``token_lengths.histogram``."""
    hist = stats.token_lengths.get("histogram")
    if not isinstance(hist, dict) or not hist.get("counts"):
        return None
    return [float(e) for e in hist["edges"]], [int(c) for c in hist["counts"]], str(
        stats.token_lengths.get("measure") or "tokens")
