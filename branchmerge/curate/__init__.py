"""Curation: problems + a teacher -> verified, filtered domain datasets with data cards.

``curate(CurateConfig(...))`` runs the whole pipeline (see ``pipeline``); ``write_card(DIR)``
regenerates the card of an existing output directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from branchmerge.curate.config import CurateConfig

__all__ = ["CurateConfig", "curate", "write_card"]


def curate(config: CurateConfig) -> Path:
    from branchmerge.curate.pipeline import curate as run

    return run(config)


def write_card(out_dir: Any) -> Path:
    from branchmerge.curate.card import write_card as write

    return write(out_dir)


def __getattr__(name: str) -> Any:
    if name == "CurateConfig":
        from branchmerge.curate.config import CurateConfig

        return CurateConfig
    raise AttributeError(name)
