"""Fixtures for the evaluate tests: GPQA and LiveCodeBench rows in their Hub schemas (written by us,
never real benchmark text), and a scripted engine that answers from a table."""

from __future__ import annotations

import base64
import csv
import json
import pickle
import zlib
from pathlib import Path

from branchmerge.engines.base import Completion

GPQA_COLUMNS = [
    "Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
    "Incorrect Answer 3", "Explanation", "Record ID", "High-level domain", "Subdomain",
    "Writer's Difficulty Estimate", "Canary String",
]


def write_gpqa_csv(path: Path, count: int = 4) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=GPQA_COLUMNS)
        writer.writeheader()
        for i in range(count):
            writer.writerow({
                "Pre-Revision Question": f"old q{i}",
                "Question": f"  Which made-up particle number {i} is stable?  ",
                "Correct Answer": f" right-{i} ",
                "Incorrect Answer 1": f"wrong-a-{i}",
                "Incorrect Answer 2": f"wrong-b-{i}",
                "Incorrect Answer 3": f"wrong-c-{i}",
                "Explanation": "because",
                "Record ID": f"rec{i:03d}",
                "High-level domain": ["Physics", "Chemistry"][i % 2],
                "Subdomain": "Made-up",
                "Writer's Difficulty Estimate": "Hard",
                "Canary String": "FIXTURE-CANARY",
            })
    return path


def lcb_private(tests: list[dict]) -> str:
    """LiveCodeBench's private-test encoding: base64(zlib(pickle(json text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def lcb_rows() -> list[dict]:
    stdin_tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    fn_tests = [{"input": "[1, 2, 3]\n2", "output": "true", "testtype": "functional"}]
    return [
        {   # stdin (AtCoder), inside the DeepSeek window
            "question_title": "Add", "question_content": "Read a and b, print a+b.", "platform": "atcoder",
            "question_id": "abc900_a", "contest_id": "abc900", "contest_date": "2024-09-01T00:00:00",
            "starter_code": "", "difficulty": "easy",
            "public_test_cases": json.dumps(stdin_tests),
            "private_test_cases": lcb_private([{"input": "5 7\n", "output": "12\n", "testtype": "stdin"}]),
            "metadata": "{}",
        },
        {   # functional (LeetCode), inside the window
            "question_title": "Has", "question_content": "Return whether k is in nums.", "platform": "leetcode",
            "question_id": "has-k", "contest_id": "weekly-900", "contest_date": "2025-01-15T00:00:00",
            "starter_code": "class Solution:\n    def hasK(self, nums: List[int], k: int) -> bool:\n        ",
            "difficulty": "medium", "public_test_cases": json.dumps(fn_tests),
            "private_test_cases": json.dumps([]), "metadata": json.dumps({"func_name": "hasK"}),
        },
        {   # before the window
            "question_title": "Old", "question_content": "Print 1.", "platform": "codeforces",
            "question_id": "1900A", "contest_id": "1900", "contest_date": "2024-03-01T00:00:00",
            "starter_code": "", "difficulty": "hard",
            "public_test_cases": json.dumps([{"input": "\n", "output": "1\n", "testtype": "stdin"}]),
            "private_test_cases": "", "metadata": "{}",
        },
    ]


def write_lcb_jsonl(path: Path, rows: list[dict] | None = None) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows or lcb_rows())), encoding="utf-8")
    return path


class ScriptedEngine:
    """An engine (base.Engine protocol) whose completion for (request, sample) comes from ``answer``.

    ``fail_after`` raises after that many completions, the way a killed process stops mid-run.
    """

    name = "scripted"

    def __init__(self, answer, fail_after: int | None = None, tokens: int = 100) -> None:
        self.model = "scripted"
        self.answer = answer
        self.fail_after = fail_after
        self.tokens = tokens
        self.calls: list[dict] = []

    def info(self) -> dict:
        return {"engine": self.name, "model": self.model}

    def generate(self, requests, params, on_complete=None, skip=()):
        self.calls.append({"requests": list(requests), "params": params, "skip": set(skip)})
        out = []
        for request in requests:
            for s in range(params.n):
                if (request.id, s) in skip:
                    continue
                if self.fail_after is not None and len(out) >= self.fail_after:
                    raise KeyboardInterrupt("killed")
                text = self.answer(request, s)
                finish = "length" if "</think>" not in text else "stop"
                c = Completion.build(request.id, s, text, finish, 50, self.tokens + s, model=self.model)
                out.append(c)
                if on_complete:
                    on_complete(c)
        return out
