"""The self-contained HTML report: one offline file with inline CSS, inline SVG charts and one
small inline script that a Content-Security-Policy pins by hash (so injected script cannot run
even if escaping ever failed). Every piece of text is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jinja2
from markupsafe import Markup

from branchmerge import __version__
from branchmerge.report import charts, stages
from branchmerge.report.breakdown import breakdowns
from branchmerge.report.compare import SOLVED, compare, problem_rates
from branchmerge.report.load import EvalResult, Inputs, StageResult
from branchmerge.report.mdhtml import markdown_to_html
from branchmerge.report.merges import merge_statements
from branchmerge.report.reference import NOTE
from branchmerge.report.table import Column, Summary, cell_text, cell_values, ci95, detail, fmt_pct

TEXT_BUDGET = 3_000_000  # characters of sample text in the whole file
MIN_CAP, MAX_CAP = 600, 12_000  # per text block, after sharing the budget
REDACTED = "[GPQA text redacted: its licence asks that examples not be shown publicly; rerun with --show-gpqa]"
GPQA_DETAIL_KEYS = ("extracted", "gold", "rule", "mode", "verdict", "reason", "error")


@dataclass
class Options:
    title: str = "branchmerge report"
    show_gpqa: bool = False
    samples_per_model: int = 2


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("branchmerge.report", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(summary: Summary, inputs: Inputs, options: Options) -> str:
    env = _env()
    script = env.loader.get_source(env, "report.js")[0]  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    context = {
        "title": options.title,
        "version": __version__,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "css": Markup(env.loader.get_source(env, "report.css")[0]),  # type: ignore[union-attr]
        "script": Markup(script),
        "csp": f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'",
        "summary": _summary_rows(summary),
        "columns": summary.columns,
        "note": NOTE if any(r.published for r in summary.rows) else "",
        "version_notes": summary.version_notes(),
        "merge_statements": merge_statements(summary, inputs),
        "citations": sorted({r.citation for r in summary.rows if r.published}),
        "details": _details(summary),
        "benches": [_bench(i, column, summary, options) for i, column in enumerate(summary.columns)],
        "stages": [_stage(i, stage) for i, stage in enumerate(inputs.stages)],
        "provenance": [_provenance(r) for r in inputs.evaluations],
    }
    return env.get_template("report.html.j2").render(**context)


def _summary_rows(summary: Summary) -> list[dict[str, Any]]:
    rows = []
    for row in summary.rows:
        cells = []
        for column in summary.columns:
            cell = row.cells.get(column.key)
            info = {"text": cell_text(cell), "ci": "", "n": ""}
            if isinstance(cell, EvalResult):
                ci = ci95(cell)
                info["ci"] = f"95% CI {100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else ""
                info["n"] = f"n={cell.summary.n if cell.summary.n is not None else '?'}"
            cells.append(info)
        rows.append({"label": row.label, "published": row.published, "cells": cells})
    return rows


def _details(summary: Summary) -> list[dict[str, Any]]:
    return [
        {"bench": c.label, "model": row.label, **detail(row.cells[c.key])}  # type: ignore[arg-type]
        for c in summary.columns
        for row in summary.measured()
        if c.key in row.cells
    ]


def _bench(number: int, column: Column, summary: Summary, options: Options) -> dict[str, Any]:
    results = summary.results(column)
    measured = summary.measured()
    colors = {row.label: charts.color(i) for i, row in enumerate(measured)}  # one colour per model everywhere
    points = []
    for r in results:
        pass1, tokens = cell_values(r)
        if tokens is not None:
            points.append({"label": r.model, "x": tokens, "y": 100 * pass1, "color": colors[r.model]})
    for i, row in enumerate(r for r in summary.rows if r.published):
        pass1, tokens = cell_values(row.cells.get(column.key))  # type: ignore[arg-type]
        if pass1 is not None and tokens is not None:
            points.append({"label": f"{row.label} (published)", "x": tokens, "y": 100 * pass1,
                           "color": charts.color(len(measured) + i), "hollow": True})
    passk = []
    for r in results:
        raw = r.metrics.get("pass@k") or {}
        pts = sorted((int(k), 100 * float(v)) for k, v in raw.items() if str(k).isdigit())
        if pts:
            passk.append({"label": r.model, "color": colors[r.model], "points": pts})
    rates = {r.model: problem_rates(r) for r in results}
    grid = _grid(results, rates)
    index = {row["id"]: row["index"] for row in grid["rows"]}  # one anchor per problem: grid, pairs, samples
    return {
        "anchor": f"b{number}-" + "".join(ch if ch.isalnum() else "-" for ch in column.key),
        "label": column.label,
        "version": column.version,
        "scatter": charts.scatter(f"{column.label}: accuracy vs mean output tokens", points,
                                  "mean completion tokens", "pass@1 (%)") if points else None,
        "passk": charts.line_chart(f"{column.label}: pass@k", passk, "k", "pass@k (%)", log2x=True, unit="%")
        if passk else None,
        "histograms": [h for r in results if (h := _histogram(r, column))],
        "tokens": [_token_row(r) for r in results],
        "breakdowns": [
            {"key": b["key"], "rows": [{**row, "cells": [fmt_pct(row["pass1"].get(r.model)) for r in results]}
                                       for row in b["rows"]]}
            for b in breakdowns(results)
        ],
        "grid": grid,
        "pairs": _pairs(results, rates, index),
        "samples": _samples(column, results, rates, index, options),
    }


def _histogram(result: EvalResult, column: Column) -> charts.Chart | None:
    values: dict[str, list[float]] = {"correct": [], "incorrect": []}
    for s in result.samples:
        if isinstance(s.get("completion_tokens"), (int, float)):
            values["correct" if s.get("verdict") == "correct" else "incorrect"].append(s["completion_tokens"])
    if not any(values.values()):
        return None
    return charts.histogram(f"{result.model} on {column.label}: output length", values,
                            {"correct": charts.GOOD, "incorrect": charts.BAD}, result.max_tokens)


def _token_row(result: EvalResult) -> dict[str, Any]:
    tokens = result.summary.tokens

    def mean(key: str) -> str:
        value = (tokens.get(key) or {}).get("mean")
        return f"{value:,.0f}" if isinstance(value, (int, float)) else "–"

    return {"model": result.model, **{k: mean(k) for k in ("completion", "thinking", "answer", "correct", "incorrect")}}


def _grid(results: list[EvalResult], rates: dict[str, dict[str, tuple[int, int]]]) -> dict[str, Any]:
    ids: list[str] = []
    for r in results:
        ids.extend(pid for pid in rates[r.model] if pid not in ids)
    rows = []
    for index, pid in enumerate(ids):
        cells = []
        for r in results:
            c, n = rates[r.model].get(pid, (0, 0))
            rate = c / n if n else None
            cells.append({
                "text": f"{c}/{n}" if n else "–",
                "style": f"background:hsl({120 * rate:.0f},65%,{88 - 10 * abs(rate - 0.5):.0f}%)" if n else "",
            })
        solved = {rates[r.model][pid][0] / rates[r.model][pid][1] >= SOLVED
                  for r in results if rates[r.model].get(pid, (0, 0))[1]}
        rows.append({"id": pid, "index": index, "cells": cells, "disagree": len(solved) > 1})
    return {"models": [r.model for r in results], "rows": rows, "open": len(rows) <= 60,
            "disagree": sum(r["disagree"] for r in rows)}


def _pairs(results: list[EvalResult], rates: dict[str, dict[str, tuple[int, int]]],
           index: dict[str, int]) -> list[dict[str, Any]]:
    """Every ordered pair, grouped by model A, so "merge vs each branch" reads off consecutive rows."""
    pairs = []
    for a in results:
        for b in (r for r in results if r is not a):
            p = compare(a.model, rates[a.model], b.model, rates[b.model])
            pairs.append({
                "a": p.model, "b": p.other, "common": p.common,
                "gained": [(pid, index[pid]) for pid in p.gained], "lost": [(pid, index[pid]) for pid in p.lost],
                "delta": f"{100 * p.delta:+.1f}", "ci": f"[{100 * p.ci[0]:+.1f}, {100 * p.ci[1]:+.1f}]",
            })
    return pairs


def clip(text: str, cap: int) -> tuple[str, int]:
    """The head and tail of a long text (the end of a reasoning trace matters most) and how much was cut."""
    if len(text) <= cap:
        return text, 0
    head, tail = int(cap * 0.6), int(cap * 0.4)
    return text[:head] + "\n…\n" + text[-tail:], len(text) - head - tail


def _pick(samples: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Up to ``k`` samples, one of each verdict first (so a correct and a wrong one both show)."""
    ordered = sorted(samples, key=lambda s: s.get("sample_idx", 0))
    chosen: list[dict[str, Any]] = []
    for s in ordered:
        if len(chosen) < k and s.get("verdict") not in {c.get("verdict") for c in chosen}:
            chosen.append(s)
    for s in ordered:
        if len(chosen) < k and s not in chosen:
            chosen.append(s)
    return sorted(chosen, key=lambda s: s.get("sample_idx", 0))


def _samples(column: Column, results: list[EvalResult], rates: dict[str, dict[str, tuple[int, int]]],
             index: dict[str, int], options: Options) -> dict[str, Any]:
    redact = column.is_gpqa and not options.show_gpqa
    by_problem: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        for s in r.samples:
            by_problem.setdefault(str(s["id"]), {}).setdefault(r.model, []).append(s)
    picked = {pid: {m: _pick(ss, options.samples_per_model) for m, ss in models.items()}
              for pid, models in by_problem.items()}
    blocks = sum(1 + 2 * len(ss) for models in picked.values() for ss in models.values()) or 1
    cap = max(MIN_CAP, min(MAX_CAP, TEXT_BUDGET // blocks))
    problems = []
    for pid, models in sorted(picked.items(), key=lambda item: index.get(item[0], len(index))):
        first = next((s for ss in models.values() for s in ss), None)
        if first is None:  # --samples-per-model 0
            continue
        solved = {rates[m][pid][0] / rates[m][pid][1] >= SOLVED for m in models if rates[m].get(pid, (0, 0))[1]}
        problems.append({
            "id": pid,
            "index": index.get(pid, f"x{len(problems)}"),
            "disagree": len(solved) > 1,
            "prompt": _text(first.get("prompt", ""), cap, redact),
            "reference": _text(_reference(first.get("reference")), cap, redact),
            "rates": [f"{m}: {rates[m].get(pid, (0, 0))[0]}/{rates[m].get(pid, (0, 0))[1]}" for m in models],
            "models": [{"model": m, "samples": [_sample(s, cap, redact) for s in ss]} for m, ss in models.items()],
        })
    return {"problems": problems, "redacted": redact, "cap": cap, "per_model": options.samples_per_model}


def _reference(reference: Any) -> str:
    if isinstance(reference, dict) and ("inputs" in reference or "outputs" in reference):
        n = len(reference.get("inputs") or [])
        return f"{n} test case(s)" + (f", function {reference['fn_name']}" if reference.get("fn_name") else "")
    return "" if reference is None else str(reference)


def _text(text: Any, cap: int, redact: bool) -> dict[str, Any]:
    if redact:
        return {"text": REDACTED, "cut": 0, "redacted": True}
    shown, cut = clip("" if text is None else str(text), cap)
    return {"text": shown, "cut": cut, "redacted": False}


def _sample(sample: dict[str, Any], cap: int, redact: bool) -> dict[str, Any]:
    detail_raw = sample.get("verdict_detail") or {}
    if not isinstance(detail_raw, dict):
        detail_raw = {"detail": detail_raw}
    flat = []
    for key, value in detail_raw.items():
        if isinstance(value, dict):  # e.g. science's {"strict": {"extracted", "rule", "verdict"}, ...}
            flat.extend((f"{key}.{sub}", v) for sub, v in value.items())
        else:
            flat.append((str(key), value))
    why = []
    for key, value in flat:
        if redact and (key.rsplit(".", 1)[-1] not in GPQA_DETAIL_KEYS or len(str(value)) > 24):
            continue  # option text could hide in any other field: keep letters, rules and verdicts only
        why.append((key, clip(str(value), 300)[0]))
    if sample.get("finish_reason") == "length":
        why.insert(0, ("finish_reason", "length: the sample hit max_tokens"))
    answer = sample.get("answer")
    if not answer and not sample.get("reasoning"):
        answer = sample.get("completion", "")
    return {
        "idx": sample.get("sample_idx", 0),
        "verdict": str(sample.get("verdict") or "ungraded"),
        "finish": sample.get("finish_reason") or "",
        "tokens": sample.get("completion_tokens"),
        "reasoning": _text(sample.get("reasoning") or "", cap, redact),
        "answer": _text(answer or "", cap, redact),
        "why": why,
    }


def _provenance(result: EvalResult) -> dict[str, Any]:
    s = result.summary
    return {
        "model": result.model,
        "bench": result.bench,
        "path": str(result.path),
        "rows": [
            ("model_path", str(result.model_path or "–")),
            ("bench_version", result.bench_version or "–"),
            ("n / problems / samples", " / ".join("?" if v is None else str(v) for v in (s.n, s.num_problems, s.num_samples))),
            ("sampling", ", ".join(f"{k}={v}" for k, v in (s.sampling or {}).items()) or "–"),
            ("created", s.created or "–"),
        ],
        "config": stages.flatten(result.config) if result.config is not None else [],
    }


def _stage(index: int, stage: StageResult) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kind": stage.kind,
        "name": stage.name,
        "path": str(stage.path),
        "anchor": f"stage-{index}",
        "card": markdown_to_html(stage.card) if stage.card else None,
        "stats": stages.flatten(stage.stats),
        "charts": [],
    }
    if stage.kind == "curation":
        funnel = stages.funnel(stage.stats)
        if funnel:
            info["charts"].append(charts.bars("Curation funnel: rows left after each stage",
                                              [(name, n, charts.color(0)) for name, n in funnel]))
        reasons = stages.reasons(stage.stats)
        if reasons:
            info["charts"].append(charts.bars("Rejected rows by reason",
                                              [(name, n, charts.BAD) for name, n in reasons[:20]]))
        binned = stages.length_histogram(stage.stats)
        if binned:
            edges, counts, measure = binned
            info["charts"].append(charts.binned("Kept samples: length", edges, {"kept": counts},
                                                {"kept": charts.color(0)}, measure))
        elif stage.lengths:
            info["charts"].append(charts.histogram("Kept samples: completion length", {"kept": stage.lengths},
                                                   {"kept": charts.color(0)}, None))
    elif stage.kind == "training":
        losses = stages.loss_history(stage.history)
        if losses:
            info["charts"].append(charts.line_chart("Training loss", [{"label": "loss", "color": charts.color(0),
                                                    "points": losses}], "step", "loss", unit=""))
    return info
