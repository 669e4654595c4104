"""``branchmerge run RECIPE`` and ``branchmerge demo``; options generated from ``RunConfig``/``DemoConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from branchmerge import settings
from branchmerge.settings import setting

RUN_HELP = """Run a pipeline recipe: curate, train, merge, evaluate and report stages in order.

Finished stages (whose output exists) are skipped, so rerunning an interrupted recipe resumes it.
Before anything runs, every stage is checked against its real command: its options, its inputs
(present, written by an earlier stage, or a Hub id) and the API keys it needs. --dry-run stops
there and prints the plan with token and GPU-hour estimates; --json prints it as JSON.

Example: branchmerge run tinyr1 --dry-run      (the paper's pipeline, branchmerge/recipes/tinyr1.yaml)
Example: branchmerge run tinyr1-plus --dry-run --json > plus.json
Example: branchmerge run my_recipe.yaml --set out=runs/try2
"""

DEMO_HELP = """Run the whole Branch-Merge method offline on a CPU in minutes.

Curates three toy domains with a built-in teacher (wrong on a known share of samples, so
verification rejects them), pre-trains a tiny student, trains one branch per domain, merges
them as TinyR1 did (math into science, then into code, with arcee_fusion) and with a baseline,
evaluates every model on held-out problems and writes HTML and markdown reports. Rerunning
with the same --out resumes: finished stages are skipped.

Example: branchmerge demo -o runs/demo
"""


@dataclass
class RunConfig:
    recipe: str = setting(argument=True, help="Built-in recipe name (tinyr1, tinyr1-plus, demo) or a YAML file.")
    dry_run: bool = setting(False, help="Check every stage and print the plan only.")
    json: bool = setting(False, help="Print the checked plan as JSON (implies --dry-run).")
    variables: dict[str, Any] = setting(default_factory=dict, flag="--set", pairs="text",
                                        help="Override a recipe variable: NAME=VALUE; repeatable.")


@dataclass
class DemoConfig:
    out: Path = setting(Path("runs/demo"), short="-o", help="Output folder (resumed when it holds a demo run).")
    size: str = setting("small", choices=("tiny", "small"), help="tiny (CI smoke test) or small.")
    seed: int = setting(0, help="Seed of the toy data, teacher and models.")
    dry_run: bool = setting(False, help="Prepare inputs and print the plan only.")


def _run(cfg: RunConfig, app: typer.Typer) -> None:
    from branchmerge.outdir import claim
    from branchmerge.pipeline.recipe import load_recipe
    from branchmerge.pipeline.runner import run

    recipe = load_recipe(cfg.recipe, cfg.variables)
    folder = recipe.vars.get("out")  # the run folder: resumed by default, refused when it holds anything else

    def take(check_only: bool = False) -> None:
        if folder:
            claim(folder, "pipeline", resume=True, flag="out", check_only=check_only)

    take(check_only=True)
    run(recipe, app, dry_run=cfg.dry_run, as_json=cfg.json, before_first=take)


def _demo(cfg: DemoConfig, app: typer.Typer) -> None:
    from branchmerge.outdir import claim
    from branchmerge.pipeline.demo import finish, prepare_inputs, recipe_vars
    from branchmerge.pipeline.recipe import builtin_recipe, load_recipe
    from branchmerge.pipeline.runner import run

    claim(cfg.out, "pipeline", resume=True, flag="--out")
    prepare_inputs(cfg.out, cfg.size, cfg.seed)
    recipe = load_recipe(builtin_recipe("demo"), recipe_vars(cfg.out, cfg.size))
    run(recipe, app, dry_run=cfg.dry_run)
    if not cfg.dry_run:
        finish(cfg.out)


def register(app: typer.Typer) -> None:
    # stages are checked against the same command tree the user types into
    function, cls = settings.command(RunConfig, lambda cfg: _run(cfg, app), config_option=False, what="run")
    app.command("run", cls=cls, help=RUN_HELP)(function)
    function, cls = settings.command(DemoConfig, lambda cfg: _demo(cfg, app), config_option=False, what="demo")
    app.command("demo", cls=cls, help=DEMO_HELP)(function)
