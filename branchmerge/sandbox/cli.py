"""``branchmerge sandbox run`` and ``branchmerge sandbox doctor``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from branchmerge.errors import UserError

RUN_HELP = """Run solution(s) against tests in the strongest isolation tier this machine allows.

TESTS.json is the APPS/TACO/LiveCodeBench input_output shape: {"inputs": [...], "outputs": [...],
"fn_name": "optional"}. Exit code 0 whatever the verdict; 3 when the sandbox itself failed.

Example:

  branchmerge sandbox run solution.py --tests tests.json --timeout-s 6 --memory-mb 2048 --json

C++ (stdin/stdout tests; compiled once per solution with g++ -O2 -std=c++17):

  branchmerge sandbox run solution.cpp --tests tests.json --language cpp

Several solutions run on a pool of --workers sandboxes (one JSON object per line with --json):

  branchmerge sandbox run a.py b.py c.py --tests tests.json --workers 2 --json
"""

DOCTOR_HELP = """Self-test every isolation tier (bwrap, unshare, landlock, none) and show which one
runs untrusted code here, with which layers, whether whole-solution limits (a cgroup) are
available, and what each tier does not isolate.

Example:

  branchmerge sandbox doctor
  branchmerge sandbox doctor --json
"""


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Run untrusted code against tests in an isolated sandbox.\n\n"
        "Example: branchmerge sandbox run solution.py --tests tests.json --json\n\n"
        "Example: branchmerge sandbox doctor",
        no_args_is_help=True,
    )
    group.command("run", help=RUN_HELP, no_args_is_help=True)(run)
    group.command("doctor", help=DOCTOR_HELP)(doctor)
    app.add_typer(group, name="sandbox")


def _read_tests(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read tests {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"tests file {path} is not JSON ({exc})") from None


def run(
    solutions: Annotated[list[Path], typer.Argument(help="Solution source file(s).")],
    tests: Annotated[Path, typer.Option("--tests", help="TESTS.json (input_output shape).")],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Per test, CPU seconds (wall-clock cap: 3x + 1 s).")
    ] = 6.0,
    memory_mb: Annotated[
        int, typer.Option("--memory-mb", help="The whole solution's memory (see sandbox doctor).")
    ] = 2048,
    output_limit_kb: Annotated[int, typer.Option("--output-limit-kb", help="Cap on a test's output.")] = 16384,
    all_tests: Annotated[bool, typer.Option("--all-tests", help="Do not stop at the first failure.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Sandboxes at once (default: cores).")] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="Force bwrap, unshare, landlock or none.")] = None,
    unsafe: Annotated[bool, typer.Option("--unsafe", help="Allow running with no isolation.")] = False,
    language: Annotated[str, typer.Option("--language", help="python, or cpp (g++ -O2, compiled once).")] = "python",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    from branchmerge.sandbox.results import Limits
    from branchmerge.sandbox.supervisor import run_many

    if timeout_s <= 0 or memory_mb <= 0 or output_limit_kb <= 0:
        raise UserError("--timeout-s, --memory-mb and --output-limit-kb must be positive")
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    spec = _read_tests(tests)
    jobs = []
    for path in solutions:
        try:
            jobs.append((path.read_text(), spec))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read solution {path}: {exc}") from None
    limits = Limits(
        timeout_s=timeout_s, memory_mb=memory_mb, output_limit_kb=output_limit_kb,
        all_tests=all_tests, unsafe=unsafe, tier=tier,
    )  # fmt: skip
    results = run_many(jobs, limits, workers, language=language)
    for path, result in zip(solutions, results):
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            _show(path, result)
    if any(r.verdict == "sandbox_error" for r in results):
        raise typer.Exit(3)


def _show(path: Path, result) -> None:
    from branchmerge.console import out

    colour = "green" if result.accepted else "red"
    out.print(
        f"[bold]{path}[/]: [{colour}]{result.verdict}[/] ({result.passed}/{result.total} tests, "
        f"{result.time_s:.2f}s, tier {result.tier})"
    )
    for t in result.tests:
        if t.verdict != "accepted":
            out.print(f"  test {t.index}: {t.verdict} {t.detail}", markup=False)
    if result.stderr and not result.accepted:
        out.print(result.stderr.rstrip(), markup=False, style="dim")


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    from branchmerge.sandbox.doctor import doctor_report

    report = doctor_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        from rich.table import Table

        from branchmerge.console import out

        table = Table("tier", "works", "layers", "why not")
        for row in report["tiers"]:
            layers = row["layers"]
            shown = ", ".join(f"{k}={v}" for k, v in layers.items() if k != "rlimits") if layers else ""
            why = row["why_not"] or ("" if row["safe"] else "no isolation: only with --unsafe")
            table.add_row(row["tier"], "yes" if row["works"] else "no", shown, why)
        out.print(table)
        cgroup = report["cgroup"]
        where = cgroup["where"] or f"none ({cgroup['why_not']})"
        out.print(f"cgroup: {where}", markup=False)
        out.print(f"  {cgroup['covers']}", markup=False)
        out.print(f"time: {report['time']}; every tier: capped output, empty environment", markup=False)
        for row in report["tiers"]:
            if row["works"] and row["safe"]:
                out.print(f"[bold]{row['tier']}[/] does not isolate:")
                for line in row["does_not"]:
                    out.print(f"  - {line}", markup=False)
        out.print(f"python in the sandbox: {report['python']}; uid: {report['uid']}")
        out.print(f"untrusted code runs in: [bold]{report['selected'] or 'nothing (install bubblewrap)'}[/]")
    if not report["selected"]:
        raise typer.Exit(1)
