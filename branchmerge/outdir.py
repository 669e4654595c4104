"""Output folders: a run claims its folder before any work, and never deletes what it did not write.

Every folder a command writes carries a marker (``.branchmerge.json``: which kind of output, when).
``claim`` decides, before any model load or network call, what may happen to ``--out``:

- missing or empty: created and marked, the run starts fresh;
- marked by the same kind of run: ``--resume`` continues it; ``--overwrite`` replaces it (only when
  every entry in it is one this kind of run writes, so a file the user put there is never deleted);
  a run that failed before its first result starts afresh without either flag; otherwise refused;
- anything else (another kind's output, or a folder without our marker, whatever its files are
  called: a user's ``stats.json`` looks like ours by name alone): refused, untouched.

Each refusal is one line that names the way out: ``--resume``, ``--overwrite`` or another path.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchmerge.atomic import write_json
from branchmerge.errors import UserError

MARKER = ".branchmerge.json"
# What each kind of run writes at the top of its folder (fnmatch patterns); ``--overwrite`` removes a
# marked folder only when every entry matches.
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
               "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
               "README.md", "stats.json")
OWNED: dict[str, tuple[str, ...]] = {
    "curation": ("stats.json", "run.json", "shards", "verdicts", "data", "rejected", "README.md"),
    "training": ("run_config.json", *MODEL_FILES, "checkpoints", "metrics.jsonl", "trainer_state.json",
                 ".tokenized", ".final.tmp", "training_args.bin"),
    "merge": ("stats.json", *MODEL_FILES, "mergekit_config.yml"),
    "evaluation-bench": ("config.json", "shards", "samples.jsonl", "samples.parquet", "summary.json", "README.md"),
    # a recipe's run folder (``run``, ``demo``): each stage claims its own sub-folder
    "pipeline": ("inputs", "curated", "models", "eval", "report.html", "report.md"),
}
# The file a run of each kind writes last: its presence means the run finished.
FINISHED = {"curation": "stats.json", "training": "stats.json", "merge": "stats.json",
            "evaluation-bench": "summary.json", "pipeline": "report.md"}
# Temporary names of our own atomic writes, left behind only by a crash.
TEMPORARY = (".*.tmp", ".*.tmp-*", ".*.old-*")


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != MARKER)


def _marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _temporary(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in TEMPORARY)


def _ours(kind: str, names: list[str]) -> bool:
    return all(_temporary(n) or any(fnmatch.fnmatch(n, pattern) for pattern in OWNED[kind]) for n in names)


def owner(path: Path) -> str | None:
    """The kind of run that wrote ``path`` (its marker), or None."""
    marker = _marker(path)
    return str(marker.get("kind")) if marker else None


def claim(path: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False,
          has_results: Callable[[Path], bool] = lambda p: True, flag: str = "--out", resumable: bool = True,
          check_only: bool = False) -> bool:
    """Make ``path`` this run's folder; return True when an earlier run is being resumed.

    ``has_results`` tells whether an earlier run of this kind got as far as a first result (a stored
    sample, a checkpoint); one that did not is started afresh without ``--resume``. ``check_only``
    refuses what ``claim`` would refuse but changes nothing (for outputs renamed into place whole).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file; give a folder path (it will be created)")
    # a marker another process of the same launch is writing shows first as a temporary name
    if not path.exists() or all(_temporary(n) for n in _entries(path)):
        if not check_only:
            path.mkdir(parents=True, exist_ok=True)
            mark(path, kind)
        return False
    names = _entries(path)
    found = owner(path)
    if found is None:
        shown = ", ".join(repr(n) for n in names[:3]) + (" …" if len(names) > 3 else "")
        raise UserError(f"{flag} {path}: not empty and not written by branchmerge, so not a {kind} run directory "
                        f"({len(names)} item(s): {shown}); nothing was changed — choose a new or empty folder")
    if found != kind:
        raise UserError(f"{flag} {path}: holds a {found} output of branchmerge, not a {kind} one; nothing was "
                        "changed — choose another folder")
    if overwrite or not has_results(path):  # not has_results: an earlier attempt failed before its first result
        _replace(path, kind, names, flag, check_only)
        return False
    if resume:
        if not check_only:
            mark(path, kind)
        return True
    state = "finished" if (path / FINISHED[kind]).exists() else "unfinished"
    how = "pass --resume to continue it, --overwrite to replace it" if resumable else "pass --overwrite to replace it"
    raise UserError(f"{flag} {path}: holds a {state} {kind} run; {how}, or choose another folder")


def claim_parent(path: str | Path, child_kind: str, flag: str = "--out") -> None:
    """A folder of per-item run folders (``evaluate --out DIR`` holds DIR/<bench>/): it may already hold
    such folders — adding one is normal use — but nothing else; each child is then ``claim``ed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file; give a folder path (it will be created)")
    path.mkdir(parents=True, exist_ok=True)
    for name in _entries(path):
        child = path / name
        if _temporary(name):
            continue
        if not child.is_dir() or owner(child) != child_kind:
            raise UserError(f"{flag} {path}: holds {name!r}, which is not a {child_kind} folder written by "
                            "branchmerge; nothing was changed — choose a new or empty folder")


def _replace(path: Path, kind: str, names: list[str], flag: str, check_only: bool = False) -> None:
    foreign = [n for n in names if not _ours(kind, [n])]
    if foreign:
        raise UserError(f"{flag} {path}: also holds {', '.join(repr(n) for n in foreign[:3])}, which branchmerge "
                        "did not write; move it away first (nothing was changed)")
    if check_only:
        return
    for name in names:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    mark(path, kind)


def mark(path: Path, kind: str) -> None:
    """Write the marker that says a ``kind`` run of branchmerge wrote ``path``."""
    write_json(path / MARKER, {"kind": kind, "claimed": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def claim_file(path: str | Path, signature: str, flag: str) -> Path:
    """Check that ``path`` may be written: new, or a file whose first or last KiB carries ``signature`` (an
    earlier output of the same command). A folder, or a file branchmerge did not write, is refused untouched."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file path")
    if path.exists():
        try:
            with path.open("rb") as fh:
                head = fh.read(1024)
                fh.seek(max(0, path.stat().st_size - 1024))
                tail = fh.read()
        except OSError as exc:
            raise UserError(f"{flag} {path}: cannot be read ({exc}); choose another file") from None
        if signature not in (head + tail).decode("utf-8", errors="replace"):
            raise UserError(f"{flag} {path}: exists and was not written by branchmerge; nothing was changed — "
                            "choose another file name")
    return path
