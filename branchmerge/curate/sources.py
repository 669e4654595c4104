"""Reading a source: a Hugging Face dataset id or a local jsonl/json/csv/parquet file (or folder of them).

Only raw rows come out of here (dicts, with their position); turning them into problem rows is the
adapters' job. A row of a local file that does not parse is not fatal: it becomes a raw row
carrying ``_malformed`` so the pipeline can reject it with its reason, like any other bad row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError
from branchmerge.network import check_hub
from branchmerge.records import ROW_SUFFIXES, iter_rows

LOCAL_SUFFIXES = ROW_SUFFIXES
MALFORMED = "_malformed"


@dataclass
class Source:
    """An opened source: its columns (for schema recognition) and a way to iterate its rows."""

    name: str  # what the user gave
    columns: list[str]
    kind: str  # "local" | "hub"
    _rows: Any
    revision: str | None = None

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        yield from enumerate(self._rows())


def open_source(name: str, split: str = "train", subset: str | None = None, revision: str | None = None,
                streaming: bool = False) -> Source:
    """A local path when it exists, else a Hub id (``streaming`` avoids downloading all of a big one)."""
    path = Path(name).expanduser()
    if path.exists():
        return _open_local(path)
    if path.suffix in LOCAL_SUFFIXES or name.startswith((".", "/", "~")):
        raise UserError(f"--source {name}: no such file or folder")
    return _open_hub(name, split, subset, revision, streaming)


def check_source(name: str) -> None:
    """Refuse a local source that cannot be read (missing, empty, a folder without row files, a file whose
    bytes are another format) before the output folder is claimed; a Hub id is checked when opened."""
    path = Path(name).expanduser()
    if path.exists():
        for file in _local_files(path):
            next(iter_rows(file, "--source"), None)
    elif path.suffix.lower() in LOCAL_SUFFIXES or name.startswith((".", "/", "~")):
        raise UserError(f"--source {name}: no such file or folder")


def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in LOCAL_SUFFIXES:
            raise UserError(f"--source {path}: expected a {', '.join(LOCAL_SUFFIXES)} file")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in LOCAL_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"--source {path}: the folder holds no {', '.join(LOCAL_SUFFIXES)} files")
    return files


def _open_local(path: Path) -> Source:
    files = _local_files(path)

    def rows() -> Iterator[dict[str, Any]]:
        for file in files:
            for number, row, why in iter_rows(file, "--source"):
                yield row if why is None else {MALFORMED: f"{file.name}:{number}: {why}"}

    columns: list[str] = []
    for _, (_, row) in zip(range(50), enumerate(rows()), strict=False):
        columns += [c for c in row if c not in columns and c != MALFORMED]
    return Source(str(path), columns, "local", rows)


def _open_hub(name: str, split: str, subset: str | None, revision: str | None, streaming: bool) -> Source:
    check_hub()  # once, within seconds: offline means the Hub cache only, no retry storms
    import datasets

    try:
        ds = datasets.load_dataset(name, subset, split=split, revision=revision, streaming=streaming)
    except Exception as exc:  # offline, unknown id, gated, bad split: all user-fixable
        raise UserError(
            f"cannot load Hugging Face dataset {name!r} (subset={subset}, split={split}, revision={revision}): "
            f"{type(exc).__name__}: {exc}. Check the id, --subset/--split, your network and HF_TOKEN, "
            "or give a local .jsonl/.json/.csv/.parquet path"
        ) from None
    columns = list(ds.column_names or [])
    if not columns:  # a streamed dataset without declared features: its first row tells
        columns = list(next(iter(ds), None) or {})
    return Source(name, columns, "hub", lambda: iter(ds), revision)
