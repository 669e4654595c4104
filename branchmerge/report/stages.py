"""Reading the curation, training and merge stats tolerantly: their producers add keys over time.

The funnel may be a mapping ``{stage: count}`` or ``{stage: {"kept": n, "rejected": {...}}}`` or a
list of ``{"stage"/"name": ..., "kept"/"count"/...: n}``; reject reasons may sit at the top level
or inside each stage. Whatever is not recognised still reaches the report through ``flatten``.
"""

from __future__ import annotations

from typing import Any

COUNT_KEYS = ("kept", "out", "count", "n", "rows", "after", "passed", "total")
REASON_KEYS = ("rejected", "reject_reasons", "reasons", "dropped")


def _count(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        for key in COUNT_KEYS:
            if isinstance(value.get(key), (int, float)) and not isinstance(value.get(key), bool):
                return float(value[key])
    return None


def funnel(stats: dict[str, Any]) -> list[tuple[str, float]]:
    """(stage, rows left after it) in pipeline order."""
    raw = stats.get("funnel", stats.get("stages"))
    items: list[tuple[str, Any]] = []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(str(e.get("stage") or e.get("name") or i), e) for i, e in enumerate(raw) if isinstance(e, dict)]
    return [(str(name), c) for name, value in items if (c := _count(value)) is not None]


def reasons(stats: dict[str, Any]) -> list[tuple[str, float]]:
    """(reject reason, rows) over the whole run, largest first."""
    found: dict[str, float] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for reason, n in value.items():
                c = _count(n)
                if c is not None:
                    found[f"{prefix}{reason}"] = found.get(f"{prefix}{reason}", 0) + c

    for key in REASON_KEYS:
        add("", stats.get(key))
    raw = stats.get("funnel", stats.get("stages"))
    entries = raw.items() if isinstance(raw, dict) else (
        [(e.get("stage") or e.get("name"), e) for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    )
    for stage, value in entries:
        if isinstance(value, dict):
            for key in REASON_KEYS:
                add(f"{stage}: ", value.get(key))
    return sorted(found.items(), key=lambda kv: -kv[1])


def flatten(obj: Any, prefix: str = "", limit: int = 300) -> list[tuple[str, str]]:
    """Scalar leaves as ('a.b.c', value) pairs, long lists summarised, at most ``limit`` rows."""
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


def loss_history(stats: dict[str, Any], lines: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(step, loss) points from the trainer's log lines, or a ``log_history`` list in the stats."""
    for raw in (lines, *(stats.get(key) for key in ("log_history", "history"))):
        if isinstance(raw, list):
            points = [
                (float(e["step"]), float(e["loss"]))
                for e in raw
                if isinstance(e, dict) and isinstance(e.get("step"), (int, float))
                and isinstance(e.get("loss"), (int, float))
            ]
            if points:
                return points
    return []


def length_histogram(stats: dict[str, Any]) -> tuple[list[float], list[int], str] | None:
    """(bin edges, counts, what was measured) from curation's ``token_lengths.histogram``."""
    lengths = stats.get("token_lengths")
    hist = lengths.get("histogram") if isinstance(lengths, dict) else None
    if not isinstance(hist, dict):
        return None
    edges, counts = hist.get("edges"), hist.get("counts")
    if (isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 and counts
            and all(isinstance(v, (int, float)) for v in [*edges, *counts])):
        return [float(e) for e in edges], [int(c) for c in counts], str(lengths.get("measure") or "tokens")
    return None
