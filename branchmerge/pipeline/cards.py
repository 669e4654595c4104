"""Planned dataset cards of a recipe's curation stages (how ``data_cards/`` is produced).

The recipe is orchestration, the card is curation's: this module reads the one and asks the other
to render, so the curation stage never imports the pipeline.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from branchmerge import settings
from branchmerge.atomic import write_text
from branchmerge.curate.card import render_planned_card
from branchmerge.curate.config import CurateConfig
from branchmerge.pipeline.recipe import load_recipe


def write_planned_cards(recipe_name: str, out_dir: str | Path) -> list[Path]:
    """One planned card per curation stage of ``recipe_name``, written into ``out_dir``."""
    recipe = load_recipe(recipe_name)
    written = []
    for stage in recipe.stages:
        if stage.command[:1] != ["curate"] or len(stage.command) < 2:
            continue
        path = Path(out_dir) / f"{recipe.name}-{stage.id}.md"
        given = {**settings.canonical(CurateConfig, stage.options), "domain": stage.command[1]}
        config = settings.build(CurateConfig, None, given, what=f"stage {stage.id}")
        card = render_planned_card(recipe.name, stage.id, config, stage.expected, shlex.join(stage.argv()))
        write_text(path, card)
        written.append(path)
    return written
