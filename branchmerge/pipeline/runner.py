"""Run a recipe: validate every stage against the real CLI, then run the stages in order.

Each stage runs as its own process through the same ``branchmerge`` command a user would type
(or the stage's ``launcher``, such as ``accelerate launch ... -m branchmerge`` for multi-GPU
training), so a recipe can never take a shortcut the CLI does not have. A stage whose ``done``
file exists is skipped, which is how an interrupted recipe resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from branchmerge.console import err, out, verbosity
from branchmerge.errors import UserError, did_you_mean
from branchmerge.pipeline.plan import StagePlan, command_line, missing_keys, plan_recipe, python_argv
from branchmerge.pipeline.plan import as_json as plan_json
from branchmerge.pipeline.recipe import Recipe, Stage


def validate(recipe: Recipe, app: typer.Typer) -> None:
    """Check that every stage names a real command and only options that command has."""
    for stage in recipe.stages:
        known = flags(app, stage)
        for name in stage.options:
            flag = "--" + name.replace("_", "-")
            if flag not in known:
                raise UserError(
                    f"stage {stage.id!r}: `branchmerge {' '.join(stage.command)}` has no option {flag}"
                    f"{did_you_mean(flag, known)}"
                )


def flags(app: typer.Typer, stage: Stage) -> set[str]:
    """Every ``--option`` the stage's command accepts."""
    command, _ = resolve_command(app, stage)
    known = {opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")}
    known |= {opt for param in command.params for opt in getattr(param, "secondary_opts", [])}
    return known | set(getattr(command, "hidden_aliases", {}))  # old spellings stay valid in recipes


def resolve_command(app: typer.Typer, stage: Stage) -> tuple[Any, list[str]]:
    """The click command a stage names and the command words left over (its positional arguments).
    Typer may bring its own click, so groups are duck-typed."""
    root = typer.main.get_command(app)
    command = root
    words = list(stage.command)
    ctx = root.context_class(root)
    while words and hasattr(command, "get_command"):
        sub = command.get_command(ctx, words[0])
        if sub is None:
            valid = ", ".join(sorted(command.list_commands(ctx)))
            raise UserError(f"stage {stage.id!r}: unknown command {' '.join(stage.command)!r}; valid: {valid}")
        command, words = sub, words[1:]
    return command, words


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


def _fmt(tokens: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit}"
    return f"{tokens:g}"


def check(recipe: Recipe, app: typer.Typer, dry_run: bool) -> list[StagePlan]:
    """Validate and plan every stage; refuse (before any stage runs) on a problem or, for a real run,
    on an API key a stage still to run needs."""
    validate(recipe, app)
    plans = plan_recipe(recipe, app)
    problems = [f"stage {p.stage.id}: {msg}" for p in plans for msg in p.problems]
    for line in problems[1:]:
        err.print(f"[red]problem[/] {line}", highlight=False)
    if problems:
        raise UserError(problems[0] + (f" (and {len(problems) - 1} more problem(s) above)" if len(problems) > 1
                                       else ""))
    missing = missing_keys(plans)
    if missing and not dry_run:
        users = [p.stage.id for p in plans if set(p.keys) & set(missing) and not p.stage.done.exists()]
        raise UserError(f"stage {users[0]} needs an API key: set {', '.join(missing)} before running the recipe "
                        "(nothing was started)")
    return plans


def print_plan(recipe: Recipe, plans: list[StagePlan]) -> None:
    out.print(plan(recipe))
    for i, p in enumerate(plans, 1):
        out.print(f"# {i}. {p.stage.id}" + (f": {p.stage.description}" if p.stage.description else ""),
                  highlight=False)
        out.print(command_line(p), highlight=False, soft_wrap=True)
    inputs = [entry for p in plans for entry in p.inputs]
    counts = {kind: sum(1 for e in inputs if (e["found"].split()[0]) == kind) for kind in ("exists", "stage", "hub")}
    out.print(f"inputs: {counts['exists']} present, {counts['stage']} written by an earlier stage, "
              f"{counts['hub']} Hub id(s)", highlight=False)
    missing = missing_keys(plans)
    if missing:
        err.print(f"[yellow]needs[/] {', '.join(missing)} (unset): set it before running", highlight=False)


def run(recipe: Recipe, app: typer.Typer, dry_run: bool = False, as_json: bool = False,
        before_first: Callable[[], None] | None = None) -> list[str]:
    """Run (or with ``dry_run`` only check and print) the recipe; return the ids of stages run.
    ``before_first`` runs once every check has passed, before the first stage (it claims the run folder)."""
    plans = check(recipe, app, dry_run or as_json)
    if as_json:
        print(json.dumps(plan_json(recipe, plans), indent=2, ensure_ascii=False))
        return []
    quiet = verbosity() < 0
    if dry_run or not quiet:  # -q: the stages' own result lines only
        print_plan(recipe, plans)
    if dry_run:
        return []
    if before_first is not None:
        before_first()
    env = {**os.environ, **recipe.env}
    ran = []
    for i, stage in enumerate(recipe.stages, 1):
        if stage.done.exists():
            if not quiet:
                err.print(f"[dim]{i}/{len(recipe.stages)} {stage.id}: done ({stage.done}), skipped[/]")
            continue
        argv = python_argv(stage, quiet)
        out_dir = stage.options.get("out")
        if out_dir and Path(str(out_dir)).exists() and "--resume" in flags(app, stage):
            argv.append("--resume")  # an interrupted stage continues where it stopped
        if not quiet:
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
        if not quiet:
            err.print(f"[green]{stage.id}[/] finished in {time.monotonic() - start:.1f}s")
        ran.append(stage.id)
    return ran
