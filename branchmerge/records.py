"""Row schemas shared by every stage, and the append-only run store.

A *problem* row is what curation and evaluation start from; a *generation* row is a problem row
plus one engine completion and its verdict (DESIGN.md, "Contracts between stages").

The run store keeps rows as JSONL shards that are appended to one complete line at a time and
flushed as each row completes. A crash at any moment can only leave a torn last line in the shard
being written; readers ignore it and writers cut it off before appending, so a ``--resume`` run
sees exactly the rows that were fully written and skips their keys.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from branchmerge.atomic import temp_path
from branchmerge.errors import UserError

DOMAINS = ("math", "code", "science")
VERDICTS = ("correct", "incorrect", "unparsed", "truncated", "error")
FINISH_REASONS = ("stop", "length", "error")

# field -> (accepted types, required)
PROBLEM_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "domain": ((str,), True),
    "source": ((str,), False),
    "prompt": ((str,), True),
    "reference": ((str, dict, list, int, float, type(None)), False),
    "meta": ((dict,), False),
}
GENERATION_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    **PROBLEM_SCHEMA,
    "model": ((str,), True),
    "sample_idx": ((int,), True),
    "completion": ((str,), True),
    "reasoning": ((str,), False),
    "answer": ((str,), False),
    "finish_reason": ((str,), False),
    "prompt_tokens": ((int, type(None)), False),
    "completion_tokens": ((int, type(None)), False),
    "verdict": ((str, type(None)), False),
    "verdict_detail": ((dict, type(None)), False),
}
SCHEMAS = {"problem": PROBLEM_SCHEMA, "generation": GENERATION_SCHEMA}
DEFAULTS: dict[str, Any] = {
    "source": "",
    "reference": None,
    "meta": {},
    "reasoning": "",
    "answer": "",
    "finish_reason": "stop",
    "prompt_tokens": None,
    "completion_tokens": None,
    "verdict": None,
    "verdict_detail": None,
}
# Free-form fields whose shape differs between domains; Parquet stores them as JSON text so that
# one file has one schema (decode with json.loads, or read back with ``read_parquet_rows``).
JSON_FIELDS = ("reference", "meta", "verdict_detail")


class RecordError(UserError):
    """A row that does not match its schema, named by file and line."""


def validate(row: Any, schema: str = "problem") -> dict[str, Any]:
    """Check ``row`` against a schema and fill optional fields; raise ``ValueError`` with the reason."""
    fields = SCHEMAS[schema]
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    missing = [name for name, (_, required) in fields.items() if required and name not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    out = dict(row)
    for name, (types, _) in fields.items():
        if name not in out:
            default = DEFAULTS[name]
            out[name] = dict(default) if isinstance(default, dict) else default
            continue
        value = out[name]
        if isinstance(value, bool) and bool not in types:
            raise ValueError(f"field {name!r} must be {_names(types)}, got bool")
        if not isinstance(value, types):
            raise ValueError(f"field {name!r} must be {_names(types)}, got {type(value).__name__}")
    if out["domain"] not in DOMAINS:
        raise ValueError(f"domain {out['domain']!r} is not one of {', '.join(DOMAINS)}")
    if not out["id"]:
        raise ValueError("field 'id' is empty")
    if schema == "generation":
        if out["verdict"] is not None and out["verdict"] not in VERDICTS:
            raise ValueError(f"verdict {out['verdict']!r} is not one of {', '.join(VERDICTS)}")
        if out["sample_idx"] < 0:
            raise ValueError("sample_idx must be >= 0")
    return out


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, value, None)`` for each non-blank line of a JSONL file, or ``(line number, None,
    why)`` where a line is not JSON. Callers decide whether a bad line stops them or becomes a row."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno})"


# The one list of row-file formats: every command that reads a file of rows (curate --source,
# evaluate --data, verify IN, train --data) reads these, through ``iter_rows``.
ROW_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_MAGIC = {b"PAR1": ".parquet", b"PK\x03\x04": ".zip", b"\x1f\x8b": ".gz"}


def iter_rows(path: str | Path, flag: str = "file") -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(row number, row, None)`` for each row of a .jsonl/.json/.csv/.parquet file, or ``(row number,
    None, why)`` for a row that is not a JSON object (JSONL lines are read one by one, so one bad line
    does not hide the others). A file that cannot be read as its suffix says is one ``UserError``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a {', '.join(ROW_SUFFIXES)} file")
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in ROW_SUFFIXES:
        raise UserError(f"{flag} {path}: unsupported file type {suffix or '(none)'!r}; use {', '.join(ROW_SUFFIXES)}")
    with path.open("rb") as fh:
        head = fh.read(4)
    actual = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
    if actual and actual != suffix:
        raise UserError(f"{flag} {path}: the file is {actual[1:]} data named {suffix}; rename it to its real type")
    if not head:
        raise UserError(f"{flag} {path}: the file is empty")
    if suffix == ".parquet":
        yield from _parquet_rows(path, flag)
    elif suffix == ".csv":
        yield from _csv_rows(path, flag)
    elif suffix == ".json" and head.lstrip()[:1] in (b"[", b"{"):
        yield from _json_rows(path, flag)
    else:
        for lineno, row, why in iter_jsonl(path):
            yield (lineno, row, None) if isinstance(row, dict) else (lineno, None, why or "not a JSON object")


def _json_rows(path: Path, flag: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):  # not one document: JSON lines named .json
        for lineno, row, why in iter_jsonl(path):
            yield (lineno, row, None) if isinstance(row, dict) else (lineno, None, why or "not a JSON object")
        return
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise UserError(f"{flag} {path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, row in enumerate(data, 1):
        yield (i, row, None) if isinstance(row, dict) else (i, None, f"item {i} is not a JSON object")


def _csv_rows(path: Path, flag: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    import csv

    csv.field_size_limit(1 << 30)  # R1 traces are long
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), 2):  # numbered as lines: the header is line 1
                yield i, dict(row), None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{flag} {path}: cannot parse as CSV ({exc})") from None


def _parquet_rows(path: Path, flag: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise UserError(f"{flag} {path}: not a readable Parquet file ({exc})") from None
    i = 0
    for batch in handle.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            i += 1
            yield i, row, None


def read_jsonl(path: str | Path, schema: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rows of a JSONL file, validated against ``schema`` when given.

    Any unreadable or invalid row raises ``RecordError`` naming the file and line.
    """
    for lineno, row, why in iter_jsonl(path):
        try:
            if why is not None:
                raise ValueError(why)
            yield validate(row, schema) if schema else row
        except ValueError as exc:
            raise RecordError(f"{path}:{lineno}: {exc}") from None


def row_key(row: dict[str, Any], key_fields: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(name) for name in key_fields)


class RunStore:
    """Append-only JSONL shards in ``<dir>/shards`` with resume by key.

    Every ``open`` starts a new shard, so an earlier (possibly crashed) shard is never rewritten
    except to cut a torn final line. ``append`` is thread-safe and skips keys already stored.
    """

    def __init__(
        self,
        directory: str | Path,
        key_fields: Sequence[str] = ("id", "sample_idx"),
        schema: str | None = "generation",
    ) -> None:
        self.directory = Path(directory)
        self.shard_dir = self.directory / "shards"
        self.key_fields = tuple(key_fields)
        self.schema = schema
        self._keys: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        self._fd: int | None = None

    # -- reading -------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.shard_dir.glob("part-*.jsonl")) if self.shard_dir.exists() else []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete row once, in write order (first copy of a key wins)."""
        seen: set[tuple[Any, ...]] = set()
        for shard in self.shards():
            for row in _complete_rows(shard):
                key = row_key(row, self.key_fields)
                if key not in seen:
                    seen.add(key)
                    yield row

    def keys(self) -> set[tuple[Any, ...]]:
        return {row_key(row, self.key_fields) for row in self.rows()}

    def has_rows(self) -> bool:
        """Whether an earlier run stored at least one complete row (it got as far as a first result)."""
        return next(self.rows(), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.rows())

    # -- writing -------------------------------------------------------------------------------
    def open(self, resume: bool = False) -> set[tuple[Any, ...]]:
        """Start a new shard; return the keys already stored (empty unless ``resume``)."""
        existing = self.shards()
        if existing and not resume:
            n = len(self)
            raise UserError(
                f"{self.directory} already holds {n} row(s) from an earlier run; "
                "pass --resume to continue it, or choose another output directory"
            )
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        for shard in existing:
            _cut_torn_tail(shard)
        self._keys = self.keys()
        index = len(existing)
        path = self.shard_dir / f"part-{index:05d}.jsonl"
        while path.exists():
            index += 1
            path = self.shard_dir / f"part-{index:05d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return set(self._keys)

    def append(self, row: dict[str, Any]) -> bool:
        """Validate and append one row; False when its key was already stored."""
        if self._fd is None:
            raise RuntimeError("RunStore.append before open()")
        if self.schema:
            try:
                row = validate(row, self.schema)
            except ValueError as exc:
                raise RecordError(f"row {row_key(row, self.key_fields)} for {self.directory}: {exc}") from None
        line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        key = row_key(row, self.key_fields)
        with self._lock:
            if key in self._keys:
                return False
            _write_all(self._fd, line)
            self._keys.add(key)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- export --------------------------------------------------------------------------------
    def export_parquet(self, path: str | Path, rows: Iterable[dict[str, Any]] | None = None) -> Path:
        """Write rows (default: all stored rows) to one Parquet file, atomically."""
        return write_parquet(path, self.rows() if rows is None else rows)


def write_parquet(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Rows to Parquet that pandas and ``datasets.load_dataset("parquet")`` read directly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = [
        {k: (json.dumps(v, ensure_ascii=False, default=str) if k in JSON_FIELDS else v) for k, v in row.items()}
        for row in rows
    ]
    table = pa.Table.from_pylist(encoded)
    path = Path(path)
    with temp_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a Parquet export back into rows, decoding the JSON fields."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for row in rows:
        for k in JSON_FIELDS:
            if isinstance(row.get(k), str):
                row[k] = json.loads(row[k])
    return rows


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _complete_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a shard; a final line without newline (a torn write) is ignored."""
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordError(f"{path}: corrupt row in the middle of a shard ({exc})") from None


def _cut_torn_tail(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        data = fh.seek(0) or fh.read()
        fh.truncate(data.rfind(b"\n") + 1)
