"""``branchmerge sandbox run`` and ``branchmerge sandbox doctor``.

The options of ``run`` are generated from ``RunCommand``: the sandbox's ``Limits`` (declared once,
in ``results``) plus what is run and where the results go.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import typer

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.sandbox.results import LANGUAGES, Limits
from branchmerge.settings import setting

WRITER = "branchmerge sandbox run"
SIGNATURE = f'"written_by": "{WRITER}"'  # in every line of an -o file: what --overwrite may replace

RUN_HELP = """Run solution(s) against tests in the strongest isolation tier this machine allows.

TESTS.json is the APPS/TACO/LiveCodeBench input_output shape: {"inputs": [...], "outputs": [...],
"fn_name": "optional"}. Exit code 0 whatever the verdict; 3 when the sandbox itself failed.

Example:

  branchmerge sandbox run solution.py --tests tests.json --timeout-s 6 --memory-mb 2048 --json

C++ (stdin/stdout tests; compiled once per solution with g++ -O2 -std=c++17):

  branchmerge sandbox run solution.cpp --tests tests.json --language cpp

Several solutions run on a pool of --workers sandboxes; -o keeps the results as JSONL:

  branchmerge sandbox run a.py b.py c.py --tests tests.json --workers 2 -o results.jsonl
"""

DOCTOR_HELP = """Self-test every isolation tier (bwrap, unshare, landlock, none) and show which one
runs untrusted code here, with which layers, whether whole-solution limits (a cgroup) are
available, and for each tier what it does and does not isolate.

Example:

  branchmerge sandbox doctor
  branchmerge sandbox doctor --json
"""


@dataclass(kw_only=True)
class RunCommand(Limits):
    solutions: list[Path] = setting(argument=True, input=True, help="Solution source file(s).")
    tests: Path = setting(input=True, help="TESTS.json (input_output shape).")
    language: str = setting("python", choices=LANGUAGES, help="python, or cpp (g++ -O2, compiled once).")
    workers: int | None = setting(None, ge=1, help="Sandboxes at once (default: one per core).")
    as_json: bool = setting(False, flag="--json", help="Print each result as one line of JSON.")
    out: Path | None = setting(None, short="-o", help="Also write the results here as JSONL, one line per solution.")
    overwrite: bool = setting(False, help="Replace an -o file an earlier sandbox run wrote.")

    def limits(self) -> Limits:
        return Limits(**{item.name: getattr(self, item.name) for item in settings.declared(Limits)})


@dataclass
class DoctorCommand:
    as_json: bool = setting(False, flag="--json", help="Print the report as JSON.")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Run untrusted code against tests in an isolated sandbox.\n\n"
        "Example: branchmerge sandbox run solution.py --tests tests.json --json\n\n"
        "Example: branchmerge sandbox doctor",
        no_args_is_help=True,
    )
    function, cls = settings.command(RunCommand, _run, config_option=False, what="sandbox")
    group.command("run", cls=cls, help=RUN_HELP, no_args_is_help=True)(function)
    function, cls = settings.command(DoctorCommand, _doctor, config_option=False, what="doctor")
    group.command("doctor", cls=cls, help=DOCTOR_HELP)(function)
    app.add_typer(group, name="sandbox")


def _read_tests(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read tests {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"tests file {path} is not JSON ({exc})") from None


def _claim_out(cmd: RunCommand) -> None:
    """Refuse an -o file before any sandbox starts: an existing one only with --overwrite, and only
    if an earlier sandbox run wrote it."""
    from branchmerge.outdir import claim_file

    if cmd.out is None:
        return
    if cmd.out.exists() and not cmd.out.is_dir() and not cmd.overwrite:
        raise UserError(f"-o {cmd.out}: exists; pass --overwrite to replace it, or choose another file")
    claim_file(cmd.out, SIGNATURE, "-o")


def _run(cmd: RunCommand) -> None:
    from branchmerge.sandbox.supervisor import run_many

    _claim_out(cmd)
    spec = _read_tests(cmd.tests)
    jobs = []
    for path in cmd.solutions:
        try:
            jobs.append((path.read_text(), spec))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read solution {path}: {exc}") from None
    results = run_many(jobs, cmd.limits(), cmd.workers, language=cmd.language)
    rows = [{"solution": str(path), **result.to_dict()} for path, result in zip(cmd.solutions, results)]
    if cmd.out is not None:
        from branchmerge.atomic import temp_path

        with temp_path(cmd.out) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({**row, "written_by": WRITER}) + "\n")
    for path, result, row in zip(cmd.solutions, results, rows):
        if cmd.as_json:
            typer.echo(json.dumps(row))
        else:
            _show(path, result)
    if any(r.verdict == "sandbox_error" for r in results):
        raise typer.Exit(3)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """What a solution wrote, safe for a terminal: control characters (escape sequences that could
    retitle, clear or reprogram the terminal) shown as \\xNN; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _show(path: Path, result) -> None:
    from branchmerge.console import out

    colour = "green" if result.accepted else "red"
    out.print(
        f"[bold]{path}[/]: [{colour}]{result.verdict}[/] ({result.passed}/{result.total} tests, "
        f"{result.time_s:.2f}s wall, {result.cpu_s:.2f}s CPU, tier {result.tier})"
    )
    for t in result.tests:
        if t.verdict != "accepted":
            out.print(f"  test {t.index}: {t.verdict} ({t.cpu_s:.2f}s CPU, {t.time_s:.2f}s wall) "
                      f"{printable(t.detail)}", markup=False, highlight=False)  # fmt: skip
    if result.stderr and not result.accepted:
        out.print(printable(result.stderr.rstrip()), markup=False, style="dim")


def _doctor(cmd: DoctorCommand) -> None:
    from branchmerge.sandbox.doctor import doctor_report

    report = doctor_report()
    if cmd.as_json:
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
        out.print(f"reuse: {report['reuse']}", markup=False)
        for row in report["tiers"]:
            if row["works"] and row["safe"]:
                out.print(f"[bold]{row['tier']}[/] isolates:")
                for line in row["isolates"]:
                    out.print(f"  + {line}", markup=False)
                out.print(f"[bold]{row['tier']}[/] does not isolate:")
                for line in row["does_not"]:
                    out.print(f"  - {line}", markup=False)
        out.print(f"python in the sandbox: {report['python']}; uid: {report['uid']}")
        out.print(f"untrusted code runs in: [bold]{report['selected'] or 'nothing (install bubblewrap)'}[/]")
    if not report["selected"]:
        raise typer.Exit(1)
