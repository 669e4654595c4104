"""Load a benchmark's problems as problem rows (records.py schema), from the Hub or a local file.

``load_problems`` is the one entry point (curation also calls it, to decontaminate against the
``prompt`` text). Rows keep the bare problem text in ``prompt``; the prompt template is applied
later, per sample (GPQA shows each sample its own option order). The loaders know each Hub
schema: AIME/MATH-style math sets, GPQA's CSV columns, and LiveCodeBench's code-generation rows,
whose private tests go through the safe unpickler.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from branchmerge.benchmarks.registry import BenchSpec, get_spec
from branchmerge.benchmarks.safe_pickle import UnsafePickleError, decode_test_cases
from branchmerge.errors import UserError
from branchmerge.filehash import sha256_file
from branchmerge.network import check_hub
from branchmerge.records import iter_rows, validate

LCB_RELEASE_FILES = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]
GPQA_INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


@dataclass
class Loaded:
    """Problems plus what config.json must record about where they came from."""

    rows: list[dict[str, Any]]
    version: str  # "<dataset id>@<revision>" or "<file name>@<sha256[:12]>"
    source: dict[str, Any]


def load_problems(name: str, data: str | None = None, limit: int | None = None, **options: Any) -> list[dict]:
    """Problem rows of benchmark ``name`` (a registry name or ``file.yaml:name``).

    ``data`` is a local file (jsonl, json, csv, parquet) in the Hub schema, used instead of the Hub;
    ``options`` are loader options (livecodebench: ``release``, ``date_window``).
    """
    return load_benchmark(get_spec(name), data=data, limit=limit, **options).rows


def load_benchmark(spec: BenchSpec, data: str | None = None, limit: int | None = None, **options: Any) -> Loaded:
    opts = {**spec.options, **{k: v for k, v in options.items() if v is not None}}
    if data:
        raw, version, source = _read_local(Path(data))
    else:
        raw, version, source = _read_hub(spec, opts)
    convert = CONVERTERS[spec.loader]
    rows = []
    for index, record in enumerate(raw):
        try:
            row = convert(spec, record, index)
        except (KeyError, ValueError, TypeError) as exc:
            where = source.get("path") or source.get("dataset")
            raise UserError(
                f"{where}: row {index + 1} does not look like a {spec.name} row ({type(exc).__name__}: {exc}); "
                f"expected the Hub schema of {spec.hub.get('path', spec.name)}"
            ) from None
        except UnsafePickleError as exc:
            raise UserError(f"{source.get('path') or source.get('dataset')}: row {index + 1}: {exc}") from None
        rows.append(row)
    rows = _select(spec, rows, opts)
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise UserError(f"{spec.name}: duplicate problem id {row['id']!r} in {version}")
        seen.add(row["id"])
    source = {**source, "num_rows": len(rows), "options": opts}
    if limit is not None:
        rows = rows[:limit]
    return Loaded(rows, version, source)


# -- reading ----------------------------------------------------------------------------------------


def _read_local(path: Path) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    rows = []
    for number, row, why in iter_rows(path, "--data"):
        if why is not None:
            raise UserError(f"--data {path}: row {number}: {why}")
        rows.append(row)
    digest = sha256_file(path)
    return rows, f"{path.name}@{digest[:12]}", {"path": str(path.resolve()), "sha256": digest}


def _read_hub(spec: BenchSpec, opts: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    hub = spec.hub
    if not hub.get("path"):
        raise UserError(f"benchmark {spec.name} names no Hub dataset; pass --data with a local file")
    dataset_id, revision = hub["path"], str(hub.get("revision") or "main")
    check_hub()  # once, within seconds: offline means the Hub cache only, no retry storms
    sha = _resolve_revision(dataset_id, revision)
    pinned = sha or revision
    import datasets

    try:
        if spec.loader == "livecodebench":
            files = lcb_release_files(opts.get("release"))
            urls = [f"hf://datasets/{dataset_id}@{pinned}/{f}" for f in files]
            ds = datasets.load_dataset("json", data_files=urls, split="train")
        else:
            ds = datasets.load_dataset(dataset_id, hub.get("name"), split=hub.get("split", "train"), revision=pinned)
    except Exception as exc:  # the Hub raises many types: gated, offline, not found, HTTP
        raise _hub_error(spec, exc) from None
    source = {"dataset": dataset_id, "config": hub.get("name"), "split": hub.get("split"), "revision": pinned}
    return [dict(r) for r in ds], f"{dataset_id}@{pinned}", source


def _resolve_revision(dataset_id: str, revision: str) -> str | None:
    """The commit sha behind ``revision`` (so a branch name is recorded as what it pointed to)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset_id, revision=revision).sha
    except Exception:  # offline or gated: load_dataset reports the real problem
        return None


def _hub_error(spec: BenchSpec, exc: Exception) -> UserError:
    text = f"{type(exc).__name__}: {exc}"
    dataset_id = spec.hub["path"]
    terms = (
        f"the dataset is gated: accept its terms at https://huggingface.co/datasets/{dataset_id} "
        "(GPQA: do not reveal examples in plain text online), then log in with `hf auth login` or set HF_TOKEN"
    )
    if any(word in text.lower() for word in ("gated", "401", "403", "restricted", "authenticat", "unauthorized")):
        return UserError(f"cannot load {dataset_id} for {spec.name}: {terms}; or pass --data with a local copy. ({text})")
    note = f" Note that {terms}." if spec.gated else ""
    return UserError(
        f"cannot load {dataset_id} for {spec.name} from the Hugging Face Hub ({text}). "
        f"Check the network and dataset id, or pass --data with a local copy of the dataset.{note}"
    )


def lcb_release_files(release: str | None) -> list[str]:
    """``v5`` / ``release_v5`` -> test.jsonl..test5.jsonl (cumulative); ``v4_v5`` -> the v4 and v5 additions."""
    tag = (release or "v6").removeprefix("release_")
    if tag == "latest":
        return list(LCB_RELEASE_FILES)
    try:
        if "_" in tag:
            lo, hi = (int(part.removeprefix("v")) for part in tag.split("_", 1))
        else:
            lo, hi = 1, int(tag.removeprefix("v"))
    except ValueError:
        lo = hi = 0
    if not 1 <= lo <= hi <= len(LCB_RELEASE_FILES):
        raise UserError(
            f"unknown LiveCodeBench release {release!r}; use v1..v{len(LCB_RELEASE_FILES)}, "
            "latest, or a range such as v4_v5"
        )
    return LCB_RELEASE_FILES[lo - 1 : hi]


# -- converting Hub rows to problem rows -----------------------------------------------------------


def _pick(spec: BenchSpec, record: dict[str, Any], role: str, candidates: Iterable[str]) -> Any:
    name = spec.fields.get(role)
    if name:
        return record[name]
    for key in candidates:
        if key in record and record[key] is not None:
            return record[key]
    raise KeyError(f"no {role} column (tried {', '.join(candidates)})")


def _scalar_meta(record: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    return {
        k: v for k, v in record.items()
        if k not in skip and (v is None or isinstance(v, (str, int, float, bool))) and len(str(v)) <= 200
    }


def _row(spec: BenchSpec, pid: Any, prompt: str, reference: Any, meta: dict[str, Any]) -> dict[str, Any]:
    row = {"id": str(pid), "domain": spec.domain, "source": spec.name, "prompt": prompt,
           "reference": reference, "meta": meta}
    return validate(row, "problem")


def _math(spec: BenchSpec, record: dict[str, Any], index: int) -> dict[str, Any]:
    try:
        pid = _pick(spec, record, "id", ("id", "unique_id", "ID", "idx"))
    except KeyError:
        pid = f"{spec.name}-{index}"
    problem = _pick(spec, record, "problem", ("problem", "question", "Problem", "Question"))
    answer = _pick(spec, record, "answer", ("answer", "Answer", "final_answer"))
    used = {"id", "unique_id", "ID", "idx", "problem", "question", "Problem", "Question", "answer", "Answer",
            "final_answer", "solution"}
    return _row(spec, pid, str(problem).strip(), str(answer).strip(), _scalar_meta(record, used))


def _gpqa(spec: BenchSpec, record: dict[str, Any], index: int) -> dict[str, Any]:
    correct = str(record["Correct Answer"]).strip()
    wrong = [str(record[k]).strip() for k in GPQA_INCORRECT]
    # canonical order (correct first); the run shows every sample its own shuffle of these
    options = dict(zip("ABCD", [correct, *wrong]))
    pid = record.get("Record ID") or f"{spec.name}-{index}"
    meta = {
        "domain": record.get("High-level domain"),
        "subdomain": record.get("Subdomain"),
        "difficulty": record.get("Writer's Difficulty Estimate"),
    }
    return _row(spec, pid, str(record["Question"]).strip(), {"answer": "A", "options": options}, meta)


def _livecodebench(spec: BenchSpec, record: dict[str, Any], index: int) -> dict[str, Any]:
    metadata = record.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    fn_name = metadata.get("func_name")
    tests = decode_test_cases(record.get("public_test_cases") or []) + decode_test_cases(
        record.get("private_test_cases") or []
    )
    if not tests:
        raise ValueError("no test cases (a problem without tests would count every program as correct)")
    # LiveCodeBench's own evaluation sample: functional inputs stay newline-separated JSON (one
    # argument per line) and the sandbox decodes them, as LCB's runner does
    inputs = [str(test["input"]) for test in tests]
    outputs = [str(test["output"]) for test in tests]
    reference: dict[str, Any] = {"inputs": inputs, "outputs": outputs}
    if fn_name:
        reference["fn_name"] = fn_name
    meta = {
        "title": record.get("question_title"),
        "platform": record.get("platform"),
        "contest_id": record.get("contest_id"),
        "contest_date": str(record.get("contest_date") or ""),
        "difficulty": record.get("difficulty"),
        "starter_code": record.get("starter_code") or "",
        "num_tests": len(tests),
    }
    pid = record.get("question_id") or f"{spec.name}-{index}"
    return _row(spec, pid, str(record["question_content"]).strip(), reference, meta)


def _rows(spec: BenchSpec, record: dict[str, Any], index: int) -> dict[str, Any]:
    """A user file already in the problem-row schema (domain defaults to the spec's)."""
    return validate({"domain": spec.domain, "source": spec.name, **record}, "problem")


CONVERTERS: dict[str, Callable[[BenchSpec, dict[str, Any], int], dict[str, Any]]] = {
    "math": _math, "gpqa": _gpqa, "livecodebench": _livecodebench, "rows": _rows,
}


# -- selection --------------------------------------------------------------------------------------


def parse_window(window: str) -> tuple[datetime, datetime]:
    """``2024-08-01..2025-02-01`` -> (start, end) at midnight.

    A problem is kept when ``start <= contest_date <= end``, as LiveCodeBench's own date filter
    does: a problem dated 2025-02-01T00:00 is in, one later that day is out.
    """
    try:
        lo, hi = window.split("..", 1)
        start, end = (datetime.combine(date.fromisoformat(x.strip()), datetime.min.time()) for x in (lo, hi))
    except ValueError:
        raise UserError(f"bad --date-window {window!r}; expected YYYY-MM-DD..YYYY-MM-DD") from None
    if end <= start:
        raise UserError(f"bad --date-window {window!r}: the end must come after the start")
    return start, end


def _contest_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


def _select(spec: BenchSpec, rows: list[dict[str, Any]], opts: dict[str, Any]) -> list[dict[str, Any]]:
    window = opts.get("date_window")
    if spec.loader != "livecodebench" or not window or window == "all":
        return rows
    start, end = parse_window(window)
    kept = []
    for row in rows:
        when = _contest_time(row["meta"].get("contest_date", ""))
        if when is not None and start <= when <= end:
            kept.append(row)
    return kept
