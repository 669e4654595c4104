"""``branchmerge curate {math,code,science}`` and ``branchmerge curate card``.

The options of the three domain commands are generated from ``CurateConfig``'s declarations; only
typer and the stdlib load at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchmerge import settings
from branchmerge.curate.config import CurateConfig

EXAMPLES = {
    "math": (
        "branchmerge curate math --teacher replay --source open-r1/OpenR1-Math-220k "
        "--where question_type=math-word-problem --select first --out runs/curated/math"
    ),
    "code": (
        "branchmerge curate code --teacher replay --source open-thoughts/OpenThoughts-114k --subset metadata "
        "--student-tokenizer deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --max-tokens-length 16384 "
        "--out runs/curated/code"
    ),
    "science": (
        "branchmerge curate science --teacher deepseek-r1 --source simplescaling/s1K --map prompt=question "
        "--no-require-correct --out runs/curated/science"
    ),
}
HELP = {
    "math": "Curate verified math traces (OpenR1-Math-220k replay, NuminaMath-style problems + a teacher).",
    "code": "Curate code traces verified against tests in the sandbox (OpenThoughts, TACO/APPS/Codeforces).",
    "science": "Curate science traces (multiple choice verified by letter; open questions kept unverified).",
}


def _run(config: CurateConfig) -> None:
    from branchmerge.console import result
    from branchmerge.contracts import CurationStats
    from branchmerge.curate.pipeline import curate
    from branchmerge.errors import UserError

    out = curate(config)
    stats = CurationStats.read(out)
    if not stats.rows:  # a command that produced nothing does not exit 0
        top = ", ".join(f"{name} {n}" for name, n in stats.reasons()[:3])
        raise UserError(f"curated 0 rows: every row was dropped ({top}); see {out / 'rejected'} and "
                        f"{out / 'stats.json'}", exit_code=1)
    result(f"curated {stats.rows} row{'s' * (stats.rows != 1)} ({stats.problems} problems) into {out}")


def card(
    directory: Annotated[Path, typer.Argument(help="A curation output directory (with stats.json), or with "
                                                "--recipe the folder for the planned cards.")],
    recipe: Annotated[str | None, typer.Option(help="Write the planned cards of a recipe's curation stages.")] = None,
) -> None:
    """Rewrite the dataset card (README.md) of a curation output from its stats.json.

    Example: branchmerge curate card runs/curated/math

    Example (planned cards of a recipe, as in data_cards/): branchmerge curate card data_cards --recipe tinyr1
    """
    from branchmerge.console import result
    from branchmerge.curate.card import write_card
    from branchmerge.pipeline.cards import write_planned_cards

    paths = write_planned_cards(recipe, directory) if recipe else [write_card(directory)]
    for path in paths:
        result(str(path))


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Curate verified teacher generations into a domain dataset with a data card.\n\n"
        f"Example: {EXAMPLES['math']}",
        no_args_is_help=True,
    )
    for domain in ("math", "code", "science"):
        function, cls = settings.command(CurateConfig, _run, fixed={"domain": domain}, what="curation")
        group.command(domain, cls=cls, help=f"{HELP[domain]}\n\nExample: {EXAMPLES[domain]}")(function)
    group.command("card")(card)
    app.add_typer(group, name="curate")
