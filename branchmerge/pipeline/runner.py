"""Run a recipe: validate every stage against the real CLI, then run the stages in order.

Each stage runs as its own process through the same ``branchmerge`` command a user would type
(or the stage's ``launcher``, such as ``accelerate launch ... -m branchmerge`` for multi-GPU
training), so a recipe can never take a shortcut the CLI does not have. A stage whose ``done``
file exists is skipped, which is how an interrupted recipe resumes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from branchmerge.console import err, out
from branchmerge.errors import UserError
from branchmerge.pipeline.recipe import Recipe, Stage


def validate(recipe: Recipe, app: typer.Typer) -> None:
    """Check that every stage names a real command and only options that command has."""
    for stage in recipe.stages:
        known = flags(app, stage)
        for name in stage.options:
            flag = "--" + name.replace("_", "-")
            if flag not in known:
                raise UserError(
                    f"stage {stage.id!r}: `branchmerge {' '.join(stage.command)}` has no option {flag}; "
                    f"it has {', '.join(sorted(known))}"
                )


def flags(app: typer.Typer, stage: Stage) -> set[str]:
    """Every ``--option`` the stage's command accepts."""
    command = _resolve(typer.main.get_command(app), stage)
    known = {opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")}
    known |= {opt for param in command.params for opt in getattr(param, "secondary_opts", [])}
    return known | set(getattr(command, "hidden_aliases", {}))  # old spellings stay valid in recipes


def _resolve(root: Any, stage: Stage) -> Any:
    """The click command a stage names (typer may bring its own click, so groups are duck-typed)."""
    command = root
    words = list(stage.command)
    ctx = root.context_class(root)
    while words:
        if not hasattr(command, "get_command"):
            break
        sub = command.get_command(ctx, words[0])
        if sub is None:
            valid = ", ".join(sorted(command.list_commands(ctx)))
            raise UserError(f"stage {stage.id!r}: unknown command {' '.join(stage.command)!r}; valid: {valid}")
        command, words = sub, words[1:]
    return command


def plan(recipe: Recipe) -> Table:
    table = Table(title=f"recipe {recipe.name}: {len(recipe.stages)} stages")
    for col in ("#", "stage", "command", "status", "tokens", "GPU h"):
        table.add_column(col)
    tokens = hours = 0.0
    for i, stage in enumerate(recipe.stages, 1):
        t, h = stage.estimate.get("tokens", 0.0), stage.estimate.get("gpu_hours", 0.0)
        tokens, hours = tokens + t, hours + h
        status = "[green]done[/]" if stage.done.exists() else "to run"
        table.add_row(str(i), stage.id, " ".join(stage.command), status, _fmt(t), f"{h:g}")
    table.add_row("", "total", "", "", _fmt(tokens), f"{hours:g}")
    return table


def print_commands(recipe: Recipe) -> None:
    """The exact command line of every stage, copy-pasteable."""
    for i, stage in enumerate(recipe.stages, 1):
        launcher = shlex.join(stage.launcher) if stage.launcher else "branchmerge"
        out.print(f"# {i}. {stage.id}" + (f": {stage.description}" if stage.description else ""), highlight=False)
        out.print(f"{launcher} {shlex.join(stage.argv())}", highlight=False, soft_wrap=True)


def _fmt(tokens: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit}"
    return f"{tokens:g}"


def run(recipe: Recipe, app: typer.Typer, dry_run: bool = False) -> list[str]:
    """Run (or with ``dry_run`` only validate and print) the recipe; return the ids of stages run."""
    validate(recipe, app)
    out.print(plan(recipe))
    if dry_run:
        print_commands(recipe)
        return []
    env = {**os.environ, **recipe.env}
    ran = []
    for i, stage in enumerate(recipe.stages, 1):
        if stage.done.exists():
            err.print(f"[dim]{i}/{len(recipe.stages)} {stage.id}: done ({stage.done}), skipped[/]")
            continue
        argv = [*(stage.launcher or [sys.executable, "-m", "branchmerge"]), *stage.argv()]
        out_dir = stage.options.get("out")
        if out_dir and Path(str(out_dir)).exists() and "--resume" in flags(app, stage):
            argv.append("--resume")  # an interrupted stage continues where it stopped
        err.rule(f"{i}/{len(recipe.stages)} {stage.id}")
        err.print(f"[dim]$ {shlex.join(argv)}[/]", highlight=False)
        start = time.monotonic()
        code = subprocess.call(argv, env=env)
        if code != 0:
            raise UserError(
                f"stage {stage.id!r} failed with exit code {code}; fix the cause and rerun the same command: "
                "finished stages are skipped",
                exit_code=1,
            )
        if not stage.done.exists():
            raise UserError(f"stage {stage.id!r} exited 0 but did not write {stage.done}", exit_code=1)
        err.print(f"[green]{stage.id}[/] finished in {time.monotonic() - start:.1f}s")
        ran.append(stage.id)
    return ran
