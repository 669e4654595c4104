"""``branchmerge run RECIPE.yaml`` and ``branchmerge demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchmerge.errors import UserError

RUN_HELP = """Run a pipeline recipe: curate, train, merge, evaluate and report stages in order.

Finished stages (whose output exists) are skipped, so rerunning an interrupted recipe resumes it.
--dry-run validates every stage against the real commands and prints the plan with token and
GPU-hour estimates, without running anything.

Example: branchmerge run tinyr1 --dry-run      (the paper's pipeline, branchmerge/recipes/tinyr1.yaml)
Example: branchmerge run my_recipe.yaml --set out=runs/try2
"""

DEMO_HELP = """Run the whole Branch-Merge method offline on a CPU in minutes.

Curates three toy domains with a built-in teacher (wrong on a known share of samples, so
verification rejects them), pre-trains a tiny student, trains one branch per domain, merges
them as TinyR1 did (math into science, then into code, with arcee_fusion) and with a baseline,
evaluates every model on held-out problems and writes HTML and markdown reports.

Example: branchmerge demo --out runs/demo
"""


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("run", help=RUN_HELP)
    def run_command(
        recipe: Annotated[str, typer.Argument(help="Recipe YAML file, or the name of a built-in recipe (tinyr1, demo).")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan only.")] = False,
        set_: Annotated[list[str], typer.Option("--set", help="Override a recipe variable: NAME=VALUE.")] = [],  # noqa: B006
    ) -> None:
        from branchmerge.pipeline.recipe import load_recipe
        from branchmerge.pipeline.runner import run

        run(load_recipe(recipe, _pairs(set_)), app, dry_run=dry_run)

    @app.command("demo", help=DEMO_HELP)
    def demo_command(
        out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/demo"),
        size: Annotated[str, typer.Option("--size", help="tiny (CI smoke test) or small.")] = "small",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the toy data, teacher and models.")] = 0,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Prepare inputs and print the plan only.")] = False,
    ) -> None:
        from branchmerge.pipeline.demo import SIZES, finish, prepare_inputs, recipe_vars
        from branchmerge.pipeline.recipe import builtin_recipe, load_recipe
        from branchmerge.pipeline.runner import run

        if size not in SIZES:
            from branchmerge.errors import choice_error

            raise choice_error("size", size, list(SIZES))
        prepare_inputs(out, size, seed)
        recipe = load_recipe(builtin_recipe("demo"), recipe_vars(out, size))
        run(recipe, app, dry_run=dry_run)
        if not dry_run:
            finish(out)
