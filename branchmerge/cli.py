"""The ``branchmerge`` command line.

Each stage owns its commands in ``branchmerge/<stage>/cli.py`` through a ``register(app)``
function; this module only wires them together and sets the global options. Stage modules import
their heavy dependencies (torch, transformers) inside the command bodies, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Annotated

import typer

from branchmerge import __version__
from branchmerge.console import err, setup_logging
from branchmerge.errors import UserError

app = typer.Typer(
    name="branchmerge",
    help=(
        "Branch-Merge distillation: curate verified teacher data per domain, train one SFT "
        "branch per domain, merge the branches, evaluate and report.\n\n"
        "Example: branchmerge demo --out runs/demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    rich_markup_mode="rich",
)

# command -> (package under branchmerge/, issue that fills it in, help text used until then)
STAGES: dict[str, tuple[str, int, str]] = {
    "curate": ("curate", 4, "Curate verified teacher generations into a domain dataset."),
    "train": ("train", 5, "Train one SFT branch per domain with TRL."),
    "merge": ("merge", 6, "Merge branches (arcee_fusion, ties, dare, slerp, linear, ...)."),
    "evaluate": ("evaluate", 7, "Evaluate models on AIME, MATH-500, GPQA-Diamond, LiveCodeBench."),
    "report": ("report", 8, "Build HTML and markdown reports from result directories."),
    "verify": ("verify", 3, "Grade completions: math, science or code."),
    "sandbox": ("sandbox", 2, "Run untrusted code against tests in an isolated sandbox."),
    "demo": ("pipeline", 9, "Run the whole method offline on a CPU in minutes."),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"branchmerge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More log output.")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    setup_logging(verbose, quiet)


def _pending(name: str, issue: int, help_text: str) -> None:
    @app.command(
        name,
        help=f"{help_text}\n\nNot implemented yet (issue {issue}): exits 2.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def _command() -> None:
        err.print(f"[yellow]branchmerge {name}[/] is not implemented yet (issue {issue}).")
        raise typer.Exit(2)


for _name, (_package, _issue, _help) in STAGES.items():
    _module = f"branchmerge.{_package}.cli"
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module).register(app)
    else:
        _pending(_name, _issue, _help)


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: partial outputs are kept; rerun with --resume to continue")
        sys.exit(130)
