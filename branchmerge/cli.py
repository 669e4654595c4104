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
from branchmerge.console import err, setup_logging, verbosity
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
    rich_markup_mode=None,  # plain click help: option names wrap instead of being cut at 80 columns
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
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and the final result line.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    setup_logging(verbose, quiet)


for _package in dict.fromkeys(STAGES.values()):
    importlib.import_module(f"branchmerge.{_package}.cli").register(app)


INTERRUPTED = 130


def main() -> None:
    """Run the command line; every failure is one line on stderr and a meaningful exit code.

    2: a mistake the user can fix (bad option, value, path or input); 1: the work could not be done
    (nothing produced, a remote service failed); 130: interrupted. An unexpected internal error is one
    line too, with its traceback behind ``-v``.
    """
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        code = app(standalone_mode=False)
        if code == INTERRUPTED:  # typer turns a KeyboardInterrupt inside a command into this code
            raise KeyboardInterrupt
    except NoArgsIsHelpError as exc:
        err.print(exc.format_message(), markup=False, highlight=False)
        sys.exit(2)
    except ClickException as exc:  # a bad option or value, caught by the parser
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except (KeyboardInterrupt, Abort):
        err.print("[yellow]interrupted[/]: nothing half-written was put in place; a command with --resume "
                  "continues from its partial outputs")
        sys.exit(INTERRUPTED)
    except Exception as exc:  # a bug of ours: one line, the traceback with -v
        if verbosity() > 0:
            raise
        _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with -v for the traceback and report it", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), " ".join(message.split())), soft_wrap=True)
    sys.exit(code)
