"""Parse the APPS/TACO/LiveCodeBench ``input_output`` dict into test cases, rejecting bad shapes
with a message that names the test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from branchmerge.errors import UserError


@dataclass
class Case:
    send: dict  # what the harness receives: {"stdin": str} or {"args": list}
    expected: Any  # str (stdio) or the decoded return value (call-based)
    apps_style: bool = False


@dataclass
class Suite:
    mode: str  # "stdio" or "call"
    fn_name: str | None
    cases: list[Case]


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)  # APPS sometimes stores stdio tests as lists of lines
    raise UserError(f"{where} must be a string (or a list of lines), got {type(value).__name__}")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where} is not valid JSON ({exc}); call-based tests hold JSON values") from None
    except RecursionError:
        raise UserError(f"{where} nests too deeply to be a test value") from None


def parse_tests(tests: dict) -> Suite:
    """Accepts ``{"inputs", "outputs", "fn_name"?}`` or a row's ``{"input_output": <that or its JSON>}``."""
    if isinstance(tests, dict) and "input_output" in tests and "inputs" not in tests:
        inner = tests["input_output"]
        tests = _json(inner, "input_output") if isinstance(inner, str) else inner
    if not isinstance(tests, dict):
        raise UserError("tests must be a JSON object with 'inputs' and 'outputs' lists")
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise UserError("tests need 'inputs' and 'outputs' lists (APPS/LiveCodeBench input_output shape)")
    if len(inputs) != len(outputs):
        raise UserError(f"tests have {len(inputs)} inputs but {len(outputs)} outputs; they must pair up")
    if not inputs:
        raise UserError("tests are empty: at least one input/output pair is needed")
    fn_name = tests.get("fn_name") or None
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        raise UserError(f"fn_name {fn_name!r} is not a Python identifier")
    cases = []
    for i, (inp, out) in enumerate(zip(inputs, outputs)):
        where = f"test {i}"
        if fn_name is None:
            cases.append(Case({"stdin": _text(inp, where + " input")}, _text(out, where + " output")))
            continue
        if isinstance(inp, str):  # LiveCodeBench: one JSON argument per line
            args = [_json(line, f"{where} input line {j + 1}") for j, line in enumerate(inp.split("\n"))]
        elif isinstance(inp, list):  # APPS/TACO: the argument list itself
            args = inp
        else:
            raise UserError(f"{where} input must be JSON lines or an argument list, got {type(inp).__name__}")
        expected = _json(out, where + " output") if isinstance(out, str) else out
        cases.append(Case({"args": args}, expected, apps_style=not isinstance(inp, str)))
    return Suite("call" if fn_name else "stdio", fn_name, cases)
