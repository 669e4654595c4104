"""Code verdicts through the real sandbox: extraction, verdict mapping, detail kept."""

from __future__ import annotations

import json

import pytest

from branchmerge.errors import UserError
from branchmerge.verify import extract, grade, grade_rows

STDIO = {"inputs": ["3\n", "5\n"], "outputs": ["6\n", "10\n"]}
CALL = {"inputs": ["1\n2", "5\n5"], "outputs": ["3", "10"], "fn_name": "add"}


@pytest.fixture(scope="module", autouse=True)
def sandbox_available() -> None:
    from branchmerge.sandbox import Limits, select_tier

    try:
        select_tier(Limits())
    except UserError as exc:
        pytest.skip(f"no sandbox tier on this machine: {exc}")


def _answer(code: str, lang: str = "python") -> str:
    return f"<think>\nplan it\n</think>\n\nHere is my solution:\n```{lang}\n{code}\n```\n"


def test_code_block_extraction() -> None:
    text = "```python\nprint(1)\n```\nand then\n```\nprint(2)\n```\n```cpp\nint main(){}\n```"
    assert extract.code_block(text).text == "print(2)\n"
    assert extract.code_block("```cpp\nint x;\n```").rule == "last_fenced_block_cpp"
    assert extract.code_block("no fences").rule == "none"
    assert extract.code_block("```python\nprint(1)\n").text == ""  # cut off inside the block


def test_verdicts_map_from_the_sandbox() -> None:
    rows = [
        {"domain": "code", "completion": _answer("print(int(input()) * 2)"), "reference": STDIO},
        {"domain": "code", "completion": _answer("print(int(input()) * 3)"), "reference": STDIO},
        {"domain": "code", "completion": _answer("import sys\nsys.exit(1/0)"), "reference": STDIO},
        {"domain": "code", "completion": _answer("class Solution:\n    def add(self, a, b):\n        return a + b"),
         "reference": CALL},
        {"domain": "code", "completion": _answer("def broken(:\n    pass"), "reference": STDIO},
        {"domain": "code", "completion": "<think>\nhmm\n</think>\n\nI could not solve it.", "reference": STDIO},
        {"domain": "code", "completion": "<think>\nstill writing ```python\nprint(", "reference": STDIO},
    ]
    out = grade_rows(rows, workers=2, limits={"timeout_s": 3})
    got = [(r["verdict"], r["verdict_detail"]["rule"]) for r in out]
    assert got[0] == ("correct", "accepted")
    assert got[1] == ("incorrect", "wrong_answer")
    assert got[2] == ("incorrect", "runtime_error")
    assert got[3] == ("correct", "accepted")
    assert got[4][0] == "incorrect" and got[4][1] in ("compile_error", "runtime_error")
    assert got[5] == ("unparsed", "no_code_block")
    assert got[6] == ("truncated", "no_think_close")
    sandbox = out[1]["verdict_detail"]["sandbox"]
    assert sandbox["verdict"] == "wrong_answer" and sandbox["total"] == 2


def test_time_limit_is_incorrect_with_detail() -> None:
    v = grade("code", _answer("while True:\n    pass"), STDIO, limits={"timeout_s": 1})
    assert v.verdict == "incorrect" and v.detail["rule"] == "time_limit"


def test_bad_tests_are_errors_not_passes() -> None:
    assert grade("code", _answer("print(1)"), {"inputs": [], "outputs": []}).detail["rule"] == "bad_tests"
    assert grade("code", _answer("print(1)"), {"inputs": ["1"], "outputs": []}).verdict == "error"
    assert grade("code", _answer("print(1)"), "42").verdict == "error"
    assert grade("code", _answer("print(int(input()) * 2)"), json.dumps(STDIO)).verdict == "correct"
