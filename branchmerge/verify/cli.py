"""``branchmerge verify``: grade one answer, or a JSONL file of generation rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from branchmerge.errors import UserError
from branchmerge.records import iter_jsonl

DOMAIN_CHOICES = ("math", "science", "code")
HELP = """Grade completions: math, science or code.

Example, one pair (prints the verdict and why):

  branchmerge verify math --gold '\\frac{1}{2}' --pred '<think>...</think> So \\boxed{0.5}.'

Example, a file of rows (each with `completion` and `reference`; `finish_reason` optional), written back
with `verdict` and `verdict_detail`, a summary on stderr:

  branchmerge verify math runs/gen.jsonl --out runs/graded.jsonl --workers 2 --gold-format int
"""


def register(app: typer.Typer) -> None:
    app.command("verify", help=HELP, no_args_is_help=True)(verify)


def verify(
    domain: Annotated[str, typer.Argument(help="math, science or code.")],
    in_path: Annotated[Path | None, typer.Argument(help="JSONL of generation rows to grade.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the graded rows.")] = None,
    gold: Annotated[str | None, typer.Option("--gold", help="Gold answer (pair mode).")] = None,
    pred: Annotated[str | None, typer.Option("--pred", help="Completion to grade (pair mode).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Grading processes (default: CPUs).")] = None,
    gold_format: Annotated[str, typer.Option(help="Math gold: auto, int (AIME) or latex (MATH-500).")] = "auto",
    science_mode: Annotated[str, typer.Option(help="strict or lenient sets the verdict.")] = "strict",
    timeout: Annotated[float, typer.Option(help="Seconds per math check.")] = 5.0,
    no_think: Annotated[
        bool, typer.Option("--no-think", help="Grade text without any <think> block as all answer.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Pair mode: print the verdict as JSON.")] = False,
    executor: Annotated[str, typer.Option(help="File mode: grade on this machine (local) or a Ray cluster (ray; "
                                          "pip install 'branchmerge[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: join this machine's "
                                                    "cluster, else start a local one).")] = None,
) -> None:
    from branchmerge.errors import choice_error
    from branchmerge.executors import EXECUTORS

    if domain not in DOMAIN_CHOICES:
        raise choice_error("domain", domain, DOMAIN_CHOICES)
    if executor not in EXECUTORS:
        raise choice_error("executor", executor, EXECUTORS)
    options: dict[str, Any] = {
        "gold_format": gold_format,
        "science_mode": science_mode,
        "timeout": timeout,
        "require_think": not no_think,
    }
    if in_path is None:
        _verify_pair(domain, gold, pred, options, as_json)
        return
    if gold is not None or pred is not None:
        raise UserError("give either IN.jsonl --out OUT.jsonl, or --gold and --pred, not both")
    if out is None:
        raise UserError(f"missing --out: where should the graded rows of {in_path} go?")
    _verify_file(domain, in_path, out, workers, options, executor, ray_address)


def _verify_pair(domain: str, gold: str | None, pred: str | None, options: dict[str, Any], as_json: bool) -> None:
    from branchmerge.console import out
    from branchmerge.verify import grade

    if gold is None or pred is None:
        raise UserError("pair mode needs both --gold and --pred (or give IN.jsonl --out OUT.jsonl)")
    if domain == "code":
        raise UserError("code is graded against tests: give a JSONL file of rows with a `reference`")
    reference: Any = {"answer": gold} if domain == "science" else gold
    verdict = grade(domain, pred, reference, **options)
    if as_json:
        out.print_json(json.dumps({"verdict": verdict.verdict, "verdict_detail": verdict.detail}))
        return
    detail = verdict.detail
    out.print(f"[bold]{verdict.verdict}[/]  rule: {detail.get('rule')}", highlight=False)
    for key in ("extracted", "gold", "extract_rule", "parsed_pred", "parsed_gold", "error", "strict", "lenient"):
        if key in detail:
            out.print(f"  {key}: {detail[key]}", highlight=False, markup=False)
    if detail.get("rule") == "no_think_close":
        out.print("  (no </think> in the completion; pass --no-think to grade plain answers)")


def _read_rows(path: Path) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]], list[str]]:
    """Every line's row (None where unreadable), the error rows, and the error messages."""
    rows: list[dict[str, Any] | None] = []
    bad: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, row, why in iter_jsonl(path):
        if why is None and not isinstance(row, dict):
            why = f"expected a JSON object, got {type(row).__name__}"
        if why is None and "completion" not in row:
            why = "no `completion` field"
        if why is not None:
            problems.append(f"{path}:{lineno}: {why}")
            base = row if isinstance(row, dict) else {}
            bad.append({**base, "line": lineno, "verdict": "error",
                        "verdict_detail": {"extracted": "", "gold": None, "rule": "unreadable_row", "error": why}})
            rows.append(None)
        else:
            rows.append(row)
    return rows, bad, problems


def _verify_file(domain: str, in_path: Path, out_path: Path, workers: int | None, options: dict[str, Any],
                 executor: str = "local", ray_address: str | None = None) -> None:
    from branchmerge.atomic import temp_path
    from branchmerge.console import err
    from branchmerge.executors import get_executor
    from branchmerge.executors.work import grade

    rows, bad, problems = _read_rows(in_path)
    for message in problems[:20]:
        err.print(f"[yellow]unreadable row[/] {message}; written as verdict 'error'", highlight=False)
    if len(problems) > 20:
        err.print(f"[yellow]... and {len(problems) - 20} more unreadable rows[/]")
    good = [r for r in rows if r is not None]
    runner = get_executor(executor, ray_address, workers) if good else None
    graded = iter(grade(runner, good, domain, workers=workers, show_progress=True, **options))
    bad_iter = iter(bad)
    written = [next(graded) if r is not None else next(bad_iter) for r in rows]
    with temp_path(out_path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in written:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    _summary(domain, written, out_path)


def _summary(domain: str, rows: list[dict[str, Any]], out_path: Path) -> None:
    from rich.table import Table

    from branchmerge.console import err
    from branchmerge.records import VERDICTS

    n = len(rows)
    counts = Counter(r["verdict"] for r in rows)
    table = Table(title=f"verify {domain}: {n} rows -> {out_path}")
    table.add_column("verdict")
    table.add_column("rows", justify="right")
    table.add_column("%", justify="right")
    for verdict in VERDICTS:
        table.add_row(verdict, str(counts[verdict]), f"{100 * counts[verdict] / max(n, 1):.1f}")
    timeouts = sum(1 for r in rows if (r.get("verdict_detail") or {}).get("timeout"))
    if timeouts:
        table.add_row("(of which math time-outs)", str(timeouts), f"{100 * timeouts / max(n, 1):.1f}")
    for mode in ("strict", "lenient"):
        modes = [r["verdict_detail"][mode]["verdict"] for r in rows if mode in (r.get("verdict_detail") or {})]
        if modes:
            c = Counter(modes)
            table.add_row(f"{mode}: accuracy / unparsed", f"{c['correct']}/{c['unparsed']}",
                          f"{100 * c['correct'] / len(modes):.1f}/{100 * c['unparsed'] / len(modes):.1f}")
    err.print(table)
