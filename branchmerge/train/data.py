"""Training data: find the rows, check their ``messages``, and turn each into ids and labels.

Why we tokenize ourselves instead of TRL's ``assistant_only_loss``: that option needs
``{% generation %}`` markers, which real R1-Distill templates lack, and rendering a whole
conversation through an R1 template drops the reasoning (it keeps only the text after
``</think>`` of assistant turns). The rule here works for any template: the context is the
prompt exactly as the model sees it at inference (``add_generation_prompt=True``), and the
target is the assistant content minus whatever the generation prompt already pre-fills (R1's
``<think>\\n``), followed by the template's end-of-turn text up to its stop token. Only the
target carries loss (``branchmerge.chat.ChatFormat``, shared with curation's length filter). TRL
then packs, collates and trains on the ``input_ids``/``labels`` columns.

Multi-turn rows train on their last assistant turn; earlier turns are context, rendered as the
template renders history.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchmerge.chat import IGNORE, ChatFormat
from branchmerge.contracts import CurationStats
from branchmerge.errors import UserError
from branchmerge.records import ROW_SUFFIXES, iter_rows

KEEP = ("ok", "truncated")
DATA_SUFFIXES = ROW_SUFFIXES


@dataclass
class Source:
    """Where the rows come from and, for a curation output, what its stats said."""

    path: Path
    files: list[Path]
    curation: CurationStats | None = None


def find_source(data: str | Path) -> Source:
    """A curation output (``DIR/data/*.parquet``), a directory of parquet/jsonl, or one such file.

    Several of these, comma-separated, make one mixture (its curation summary is left out)."""
    parts = [p for p in str(data).split(",") if p]
    if len(parts) > 1:
        sources = [find_source(p) for p in parts]
        return Source(Path(str(data)), [f for s in sources for f in s.files])
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"--data {path}: no such file or directory")
    if path.is_file():
        files = [path]
    else:
        folder = path / "data" if (path / "data").is_dir() else path
        files = sorted(p for p in folder.iterdir() if p.suffix in DATA_SUFFIXES and p.is_file())
    files = [f for f in files if f.suffix.lower() in DATA_SUFFIXES]
    if not files:
        raise UserError(
            f"--data {path}: no {', '.join(DATA_SUFFIXES)} files found (expected a curation output with "
            "data/*.parquet, or row files with a 'messages' column)"
        )
    stats_file = path / CurationStats.FILE if path.is_dir() else None
    curation = CurationStats.read(stats_file) if stats_file and stats_file.is_file() else None
    return Source(path, files, curation)


def load_rows(source: Source):
    """A ``datasets.Dataset`` with one ``messages`` column (JSON text) from every file."""
    import datasets

    rows: list[str] = []
    for file in source.files:
        messages = _read_parquet(file) if file.suffix == ".parquet" else _read_rows(file)
        rows.extend(m if isinstance(m, str) else json.dumps(m, ensure_ascii=False) for m in messages)
    if not rows:
        raise UserError(f"--data {source.path}: the files hold no rows")
    return datasets.Dataset.from_dict({"messages": rows})


def _read_parquet(file: Path) -> list[Any]:
    import pyarrow.parquet as pq

    columns = pq.read_schema(file).names
    if "messages" not in columns:
        raise _no_messages(file, columns)
    return pq.read_table(file, columns=["messages"]).column("messages").to_pylist()


def _read_rows(file: Path) -> list[Any]:
    out = []
    for number, record, why in iter_rows(file, "--data"):
        if why is not None:
            raise UserError(f"--data {file}: row {number}: {why}")
        if "messages" not in record:
            raise UserError(f"--data {file}: row {number} has no 'messages' field (it has {sorted(record)})")
        out.append(record["messages"])
    return out


def _no_messages(file: Path, columns: list[str]) -> UserError:
    return UserError(
        f"{file}: no 'messages' column (columns: {', '.join(columns)}); the training stage needs chat "
        "messages [{role, content}, ...] ending with the assistant turn, as `branchmerge curate` writes"
    )


def check_messages(messages: Any) -> tuple[list[dict[str, str]] | None, str]:
    """The conversation as role/content dicts, or None and why it cannot be trained on."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            return None, "messages is not JSON"
    if not isinstance(messages, list) or len(messages) < 2:
        return None, "messages must be a list of at least a prompt and an assistant turn"
    out = []
    for message in messages:
        if not isinstance(message, dict):
            return None, "a message is not a {role, content} mapping"
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            return None, "a message lacks a string role or content"
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        return None, "the last message is not an assistant turn"
    if not out[-1]["content"].strip():
        return None, "the assistant turn is empty"
    if all(m["role"] == "assistant" for m in out[:-1]):
        return None, "no prompt before the assistant turn"
    return out, "ok"


def _encode_row(row: dict[str, Any], chat: ChatFormat, max_length: int, overlong: str) -> dict[str, Any]:
    messages, why = check_messages(row["messages"])
    if messages is None:
        return _row([], [], f"invalid: {why}")
    encoded = chat.encode(messages)
    if encoded is None:
        return _row([], [], "missing_prefill")
    ids, labels = encoded["input_ids"], encoded["labels"]
    if len(ids) <= max_length:
        return _row(ids, labels, "ok")
    if overlong == "drop":
        return _row([], [], "overlong_dropped")
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return _row([], [], "overlong_dropped")
    return _row(ids, labels, "truncated")


def _row(ids: list[int], labels: list[int], status: str) -> dict[str, Any]:
    targets = sum(1 for label in labels if label != IGNORE)
    return {"input_ids": ids, "labels": labels, "status": status, "length": len(ids), "targets": targets}


def prepare(
    data,
    chat: ChatFormat,
    max_length: int,
    overlong: str = "drop",
    num_proc: int | None = None,
    where: str = "the data",
):
    """Encode every row; return (dataset of input_ids/labels, counts). No usable row is an error."""
    encoded = data.map(
        _encode_row,
        fn_kwargs={"chat": chat, "max_length": max_length, "overlong": overlong},
        remove_columns=data.column_names,
        num_proc=num_proc if num_proc and num_proc > 1 and len(data) >= 4 * num_proc else None,
        desc="Tokenizing",
    )
    statuses = Counter(encoded["status"])
    kept = encoded.filter(lambda status: status in KEEP, input_columns="status")
    if len(kept) == 0:
        reasons = ", ".join(f"{status} x{n}" for status, n in statuses.most_common())
        hint = ""
        if statuses.get("missing_prefill"):
            first = next(m for m, _ in map(check_messages, data["messages"]) if m)
            hint = (
                f"; the chat template's generation prompt pre-fills {chat.frame(first[:-1])[1]!r} but the "
                "assistant contents do not begin with it (a template in non-thinking mode, or data without "
                "reasoning?)"
            )
        raise UserError(f"{where}: no usable training example ({reasons}){hint}")
    lengths, trained = kept["length"], sum(kept["targets"])
    kept = kept.remove_columns(["status", "length", "targets"])
    counts = {
        "rows": len(data),
        "examples": len(kept),
        "truncated": statuses.get("truncated", 0),
        "dropped_overlong": statuses.get("overlong_dropped", 0),
        "dropped_missing_prefill": statuses.get("missing_prefill", 0),
        "dropped_invalid": sum(n for s, n in statuses.items() if s.startswith("invalid")),
        "invalid_reasons": {s[len("invalid: ") :]: n for s, n in statuses.items() if s.startswith("invalid")},
        "tokens": sum(lengths),
        "target_tokens": trained,
        "max_tokens": max(lengths),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
    }
    return kept, counts


def pack_plain(dataset, max_length: int):
    """Whole examples packed into rows of at most ``max_length`` tokens, best fit decreasing.

    No example is cut and none is isolated: each row is one sequence, so its examples attend to
    the ones before them, as in 360-LLaMA-Factory's plain ``packing`` (its greedy knapsack over
    sorted lengths; TinyR1's math branch). TRL's ``wrapped`` also shares attention but cuts examples
    at row ends; its ``bfd`` keeps them whole but isolates them."""
    import bisect

    import datasets

    lengths = [len(ids) for ids in dataset["input_ids"]]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted: the best fit is the first that fits
    bins: list[list[int]] = []
    for i in order:
        at = bisect.bisect_left(free, (lengths[i], -1))
        if at == len(free):
            bins.append([i])
            bisect.insort(free, (max_length - lengths[i], len(bins) - 1))
            continue
        space, b = free.pop(at)
        bins[b].append(i)
        bisect.insort(free, (space - lengths[i], b))
    ids, labels = dataset["input_ids"], dataset["labels"]
    return datasets.Dataset.from_dict({
        "input_ids": [[t for i in members for t in ids[i]] for members in bins],
        "labels": [[t for i in members for t in labels[i]] for members in bins],
    })
