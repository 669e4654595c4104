"""Chart geometry for the HTML report: scales, ticks and shapes, drawn by ``templates/charts.j2``.

Python computes every coordinate; the template only emits SVG elements, so all text (model names,
labels) goes through Jinja's autoescape. Charts use a ``viewBox`` and scale to the page width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
GOOD, BAD = "#009E73", "#D55E00"

WIDTH, HEIGHT = 560, 320
MARGIN = {"left": 56, "right": 16, "top": 34, "bottom": 46}


@dataclass
class Chart:
    title: str
    x_label: str = ""
    y_label: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    xticks: list[tuple[float, str]] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    rects: list[dict[str, Any]] = field(default_factory=list)
    circles: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    left: int = MARGIN["left"]

    @property
    def right(self) -> int:
        return self.width - MARGIN["right"]

    @property
    def top(self) -> int:
        return MARGIN["top"]

    @property
    def bottom(self) -> int:
        return self.height - MARGIN["bottom"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


class Scale:
    """Linear map from data [lo, hi] to pixels [a, b]."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, (hi if hi > lo else lo + 1), a, b

    def __call__(self, value: float) -> float:
        return round(self.a + (value - self.lo) / (self.hi - self.lo) * (self.b - self.a), 2)


def _tick_label(value: float, unit: str = "") -> str:
    if unit == "tokens":
        return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"
    return f"{value:g}"


def _axes(chart: Chart, xlo: float, xhi: float, ylo: float, yhi: float, xunit: str = "") -> tuple[Scale, Scale]:
    xs_ticks, ys_ticks = nice_ticks(xlo, xhi), nice_ticks(ylo, yhi)
    sx = Scale(xs_ticks[0], xs_ticks[-1], chart.left, chart.right)
    sy = Scale(ys_ticks[0], ys_ticks[-1], chart.bottom, chart.top)
    chart.xticks = [(sx(v), _tick_label(v, xunit)) for v in xs_ticks]
    chart.yticks = [(sy(v), _tick_label(v)) for v in ys_ticks]
    return sx, sy


def scatter(title: str, points: list[dict[str, Any]], x_label: str, y_label: str) -> Chart:
    """Points ``{label, x, y, color, hollow}``: accuracy against mean tokens, one per model."""
    chart = Chart(title, x_label, y_label)
    xs = [p["x"] for p in points] or [0.0]
    ys = [p["y"] for p in points] or [0.0]
    pad_x = (max(xs) - min(xs)) * 0.1 or max(xs) * 0.1 or 1
    pad_y = (max(ys) - min(ys)) * 0.1 or 5
    sx, sy = _axes(chart, max(0.0, min(xs) - pad_x), max(xs) + pad_x, max(0.0, min(ys) - pad_y),
                   min(100.0, max(ys) + pad_y), xunit="tokens")
    placed: list[tuple[float, float, float]] = []  # label boxes: x0, x1, baseline y
    for p in sorted(points, key=lambda p: -p["y"]):
        cx, cy = sx(p["x"]), sy(p["y"])
        chart.circles.append({
            "cx": cx, "cy": cy, "r": 6, "fill": "none" if p.get("hollow") else p["color"],
            "stroke": p["color"], "title": f"{p['label']}: {p['y']:.1f}% at {p['x']:.0f} tokens",
        })
        anchor = "end" if cx > (chart.left + chart.right) / 2 else "start"
        x = cx + (-9 if anchor == "end" else 9)
        span = 7.5 * len(p["label"])
        x0, x1 = (x - span, x) if anchor == "end" else (x, x + span)
        y = cy - 8
        while any(a < x1 and x0 < b and abs(y - ly) < 13 for a, b, ly in placed):
            y += 13  # nudge down until the label no longer overlaps one already placed
        placed.append((x0, x1, y))
        chart.texts.append({"x": x, "y": y, "text": p["label"], "anchor": anchor, "fill": p["color"]})
    return chart


def line_chart(title: str, series: list[dict[str, Any]], x_label: str, y_label: str, log2x: bool = False,
               unit: str = "") -> Chart:
    """Series ``{label, color, points: [(x, y)]}``; with ``log2x`` the x axis is log2 (for pass@k)."""
    chart = Chart(title, x_label, y_label)
    all_x = [x for s in series for x, _ in s["points"]] or [1]
    all_y = [y for s in series for _, y in s["points"]] or [0]
    tx = (lambda v: math.log2(v)) if log2x else (lambda v: v)
    lo_x, hi_x = tx(min(all_x)), tx(max(all_x))
    if log2x:
        sx = Scale(lo_x, hi_x if hi_x > lo_x else lo_x + 1, chart.left, chart.right)
        chart.xticks = [(sx(tx(k)), f"{k:g}") for k in sorted(set(all_x)) if k == 1 or tx(k).is_integer()]
        ys_ticks = nice_ticks(max(0.0, min(all_y) - 5), min(100.0, max(all_y) + 5))
        sy = Scale(ys_ticks[0], ys_ticks[-1], chart.bottom, chart.top)
        chart.yticks = [(sy(v), _tick_label(v)) for v in ys_ticks]
    else:
        sx, sy = _axes(chart, lo_x, hi_x, min(all_y), max(all_y))
    for s in series:
        pts = [(sx(tx(x)), sy(y)) for x, y in s["points"]]
        chart.lines.append({"points": " ".join(f"{x},{y}" for x, y in pts), "stroke": s["color"]})
        for (x, y), (dx, dy) in zip(s["points"], pts):
            chart.circles.append({"cx": dx, "cy": dy, "r": 3, "fill": s["color"], "stroke": s["color"],
                                  "title": f"{s['label']}: {y:.3g}{unit} at {x_label} {x:g}"})
        chart.legend.append((s["label"], s["color"]))
    return chart


def histogram(title: str, values: dict[str, list[float]], colors: dict[str, str], cap: float | None,
              bins: int = 24) -> Chart:
    """Histograms on shared bins, series side by side in each bin (e.g. correct vs incorrect lengths).

    The ``cap`` (max_tokens) is drawn as a line when the data come near it; otherwise the axis
    ends at the data and a note names the cap, so short outputs are not squashed into one corner.
    """
    hi = max([v for vs in values.values() for v in vs] + [1])
    cap_on_chart = cap is not None and cap <= hi * 1.3
    edges = [float(e) for e in nice_ticks(0, max(hi, cap) if cap_on_chart else hi, bins)]  # type: ignore[type-var]
    step = edges[1] - edges[0]
    counts = {k: [0] * (len(edges) - 1) for k in values}
    for key, vs in values.items():
        for v in vs:
            counts[key][min(int(v // step), len(edges) - 2)] += 1
    return binned(title, edges, counts, colors, "completion tokens", cap)


def binned(title: str, edges: list[float], counts: dict[str, list[int]], colors: dict[str, str],
           x_label: str, cap: float | None = None) -> Chart:
    """Draw counts already binned on ``edges`` (one list per series, side by side in each bin)."""
    chart = Chart(title, x_label, "samples")
    top = max([c for cs in counts.values() for c in cs] + [1])
    sx = Scale(edges[0], edges[-1], chart.left, chart.right)
    y_ticks = nice_ticks(0, top, 4)
    sy = Scale(0, y_ticks[-1], chart.bottom, chart.top)
    chart.xticks = [(sx(v), _tick_label(v, "tokens")) for v in nice_ticks(edges[0], edges[-1], 5)
                    if edges[0] <= v <= edges[-1]]
    chart.yticks = [(sy(v), _tick_label(v)) for v in y_ticks]
    for j, (key, cs) in enumerate(counts.items()):
        for i, c in enumerate(cs):
            if c:
                width = (sx(edges[i + 1]) - sx(edges[i])) / len(counts)
                chart.rects.append({"x": round(sx(edges[i]) + j * width, 2), "y": sy(c), "w": round(max(width - 0.5, 1), 2),
                                    "h": round(chart.bottom - sy(c), 2), "fill": colors[key], "opacity": 0.85,
                                    "title": f"{key}: {c} samples, {edges[i]:g}-{edges[i + 1]:g} tokens"})
        chart.legend.append((f"{key} ({sum(cs)})", colors[key]))
    if cap is not None and cap <= edges[-1]:
        x = sx(cap)
        chart.lines.append({"points": f"{x},{chart.top} {x},{chart.bottom}", "stroke": "#555", "dash": "4 3"})
        chart.texts.append({"x": x - 4, "y": chart.top + 10, "text": f"max_tokens {cap:g}", "anchor": "end",
                            "fill": "#555"})
    elif cap is not None:
        chart.texts.append({"x": chart.right, "y": chart.top + 10, "text": f"max_tokens {cap:g} (off the chart) →",
                            "anchor": "end", "fill": "#555"})
    return chart


def bars(title: str, items: list[tuple[str, float, str]], x_label: str = "") -> Chart:
    """Horizontal bars ``(label, value, color)`` top to bottom, e.g. a curation funnel."""
    row, label_width = 24, 180
    chart = Chart(title, x_label, "", height=MARGIN["top"] + MARGIN["bottom"] + row * max(len(items), 1),
                  left=label_width)
    hi = max([v for _, v, _ in items] + [1])
    ticks = nice_ticks(0, hi, 4)
    sx = Scale(0, ticks[-1], chart.left, chart.right - 36)  # room for the value after the longest bar
    chart.xticks = [(sx(v), _tick_label(v, "tokens" if v >= 10000 else "")) for v in ticks]
    for i, (label, value, fill) in enumerate(items):
        y = chart.top + i * row
        chart.rects.append({"x": chart.left, "y": y + 3, "w": max(sx(value) - chart.left, 1), "h": row - 6,
                            "fill": fill, "opacity": 0.85, "title": f"{label}: {value:g}"})
        chart.texts.append({"x": chart.left - 6, "y": y + row / 2 + 4, "text": label, "anchor": "end", "fill": "#222"})
        chart.texts.append({"x": sx(value) + 4, "y": y + row / 2 + 4, "text": f"{value:g}", "anchor": "start",
                            "fill": "#222"})
    return chart
