"""The ``branchmerge`` command line.

Each stage owns its commands in ``branchmerge/<stage>/cli.py`` through a ``register(app)``
function; this module only wires them together and sets the global options. Stage modules import
their heavy dependencies (torch, transformers) inside the command bodies, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
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

# command -> package under branchmerge/ whose cli.py registers it ("pipeline" also adds `run`)
STAGES: dict[str, str] = {
    "curate": "curate",
    "train": "train",
    "merge": "merge",
    "evaluate": "evaluate",
    "report": "report",
    "verify": "verify",
    "sandbox": "sandbox",
    "demo": "pipeline",
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


for _package in dict.fromkeys(STAGES.values()):
    importlib.import_module(f"branchmerge.{_package}.cli").register(app)


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: partial outputs are kept; rerun with --resume to continue")
        sys.exit(130)
