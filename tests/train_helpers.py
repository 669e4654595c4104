"""Toy data and tiny models for the training tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def toy_rows(n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Addition problems in the curation format: user prompt, assistant <think> trace and answer."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(0, 40), rng.randint(0, 40)
        rows.append(
            {
                "id": f"p{i}",
                "domain": "math",
                "messages": [
                    {"role": "user", "content": f"What is {a} + {b}?"},
                    {
                        "role": "assistant",
                        "content": f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is {a + b}.",
                    },
                ],
            }
        )
    return rows


def corpus(rows: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for r in rows for m in r["messages"]]


def write_curation(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A directory shaped like a `branchmerge curate` output: data/*.parquet, stats.json, README.md."""
    from branchmerge.records import write_parquet

    (path / "data").mkdir(parents=True)
    write_parquet(path / "data" / "train-00000-of-00001.parquet", [{**r, "meta": {"k": 1}} for r in rows])
    stats = {  # the shape branchmerge.contracts.CurationStats reads
        "kind": "curation",
        "schema_version": 1,
        "domain": "math",
        "rows": len(rows),
        "problems": len(rows),
        "rejected": 7,
        "source": {"name": "toy.jsonl", "kind": "local", "adapter": "map"},
        "teacher": {"name": "toy", "model": "toy-teacher"},
        "funnel": [{"stage": "verify", "unit": "completions", "in": len(rows) + 7, "out": len(rows), "dropped": 7,
                    "reasons": {"incorrect": 7}}],
    }
    (path / "stats.json").write_text(json.dumps(stats))
    (path / "README.md").write_text("# curated math\n")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
