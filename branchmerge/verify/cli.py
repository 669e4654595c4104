"""``branchmerge verify``: grade one answer, or a JSONL file of generation rows."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.executors import EXECUTORS
from branchmerge.outdir import claim_file
from branchmerge.records import iter_rows
from branchmerge.settings import setting
from branchmerge.verify.science import MODES as SCIENCE_MODES

GOLD_FORMATS = ("auto", "int", "latex")
# Every graded row carries the verdict keys: a file whose first KiB has them is an earlier verify output.
SIGNATURE_KEY = '"verdict_detail"'

DOMAIN_CHOICES = ("math", "science", "code")
HELP = """Grade completions: math, science or code.

Example, one pair (prints the verdict and why):

  branchmerge verify math --gold '\\frac{1}{2}' --pred '<think>...</think> So \\boxed{0.5}.'

Example, a file of rows (each with `completion` and `reference`; `finish_reason` optional), written back
with `verdict` and `verdict_detail`, a summary on stderr:

  branchmerge verify math runs/gen.jsonl -o runs/graded.jsonl --workers 2 --gold-format int

The file may be .jsonl, .json, .csv or .parquet. Exit 1 when no row could be graded.
"""


@dataclass
class VerifyConfig:
    domain: str = setting(argument=True, choices=DOMAIN_CHOICES, help="math, science or code.")
    in_path: Path | None = setting(None, argument=True, input=True,
                                   help="File of generation rows to grade (.jsonl, .json, .csv, .parquet).")
    out: Path | None = setting(None, short="-o", help="Where to write the graded rows (JSONL; replaces only an "
                               "earlier verify output).")
    gold: str | None = setting(None, help="Gold answer (pair mode).")
    pred: str | None = setting(None, help="Completion to grade (pair mode).")
    workers: int | None = setting(None, ge=1, help="Grading processes (default: CPUs).")
    gold_format: str = setting("auto", choices=GOLD_FORMATS, help="Math gold: auto, int (AIME) or latex (MATH-500).")
    science_mode: str = setting("strict", choices=SCIENCE_MODES, help="Which multiple-choice reading sets the verdict.")
    timeout_s: float = setting(5.0, gt=0, aliases=("--timeout",), help="Seconds per math check.")
    no_think: bool = setting(False, help="Grade text without any <think> block as all answer.")
    as_json: bool = setting(False, flag="--json", help="Pair mode: print the verdict as JSON.")
    executor: str = setting("local", choices=EXECUTORS, help="File mode: grade on this machine (local) or a Ray "
                            "cluster (ray; pip install 'branchmerge[ray]').")
    ray_address: str | None = setting(None, help="Ray cluster address (default: join this machine's cluster, else "
                                      "start a local one).")

    def __post_init__(self) -> None:
        settings.validate(self)


def register(app: typer.Typer) -> None:
    function, cls = settings.command(VerifyConfig, _run, config_option=False, what="verify")
    app.command("verify", cls=cls, help=HELP, no_args_is_help=True)(function)


def _run(cfg: VerifyConfig) -> None:
    options: dict[str, Any] = {
        "gold_format": cfg.gold_format,
        "science_mode": cfg.science_mode,
        "timeout": cfg.timeout_s,
        "require_think": not cfg.no_think,
    }
    if cfg.in_path is None:
        _verify_pair(cfg.domain, cfg.gold, cfg.pred, options, cfg.as_json)
        return
    if cfg.gold is not None or cfg.pred is not None:
        raise UserError("give either IN --out OUT.jsonl, or --gold and --pred, not both")
    if cfg.out is None:
        raise UserError(f"missing --out: where should the graded rows of {cfg.in_path} go?")
    claim_file(cfg.out, SIGNATURE_KEY, "--out")  # a new file, or an earlier verify output: never the user's
    _verify_file(cfg.domain, cfg.in_path, cfg.out, cfg.workers, options, cfg.executor, cfg.ray_address)


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
    """Every row (None where unreadable), the error rows, and the error messages."""
    rows: list[dict[str, Any] | None] = []
    bad: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, row, why in iter_rows(path, "IN"):
        if why is None and "completion" not in row:
            why = "no `completion` field"
        if why is not None:
            problems.append(f"{path}:{number}: {why}")
            bad.append({**(row or {}), "line": number, "verdict": "error",
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
    if not rows:
        raise UserError(f"{in_path}: holds no rows")
    if len(problems) == len(rows):  # nothing gradable: no output, and not a success
        raise UserError(f"{in_path}: no row could be graded, every row is unreadable ({problems[0]}); each row "
                        "needs a `completion` and a `reference`", exit_code=1)
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
    if all(r["verdict"] == "error" for r in written):  # written for inspection, but nothing was graded
        first = (written[0].get("verdict_detail") or {}).get("error") or "no detail"
        raise UserError(f"{in_path}: no row could be graded, every verdict is 'error' (first: {first}); the rows "
                        f"are in {out_path}", exit_code=1)
    _summary(domain, written, out_path)


def _summary(domain: str, rows: list[dict[str, Any]], out_path: Path) -> None:
    from rich.table import Table

    from branchmerge.console import err, result, verbosity
    from branchmerge.records import VERDICTS

    n = len(rows)
    counts = Counter(r["verdict"] for r in rows)
    result(f"verify {domain}: {n} row{'s' if n != 1 else ''} -> {out_path} ("
           + ", ".join(f"{v} {counts[v]}" for v in VERDICTS if counts[v]) + ")")
    if verbosity() < 0:  # -q: the result line only
        return
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
