"""Shared helpers for the report tests: the stored fixtures and copies of them to modify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "report"
EVAL = DATA / "eval"
MODELS = ("math-branch", "science-branch", "merged")
STAGES = (DATA / "curate-math", DATA / "train-math", DATA / "merge-fusion")


def eval_dirs() -> list[Path]:
    """One parent directory per model, as `evaluate --out DIR` leaves them."""
    return [EVAL / m for m in MODELS]


def summary(model: str, bench: str) -> dict[str, Any]:
    return json.loads((EVAL / model / bench / "summary.json").read_text())


def copy_bench(tmp: Path, model: str, bench: str, name: str | None = None) -> Path:
    dst = tmp / (name or f"{model}-{bench}")
    shutil.copytree(EVAL / model / bench, dst)
    return dst


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
