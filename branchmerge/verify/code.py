"""Code verdicts: the extracted program runs against the problem's tests in the sandbox.

The sandbox (``branchmerge.sandbox``) is imported here, lazily, so math and science grading never
pay for it. Its verdict is mapped onto ours and kept whole in ``verdict_detail["sandbox"]``.
"""

from __future__ import annotations

from typing import Any

from branchmerge.errors import UserError

FAILURES = ("wrong_answer", "time_limit", "memory_limit", "runtime_error", "compile_error", "output_limit")


def check_tests(reference: Any) -> str | None:
    """Why ``reference`` is not a usable test suite, or None. (An empty suite passes anything.)"""
    if not isinstance(reference, dict):
        return "reference must be a dict of tests ({'inputs', 'outputs', 'fn_name'?})"
    from branchmerge.sandbox.cases import parse_tests

    try:
        parse_tests(reference)
    except UserError as exc:
        return str(exc)
    return None


def limits_of(value: Any) -> Any:
    """A sandbox ``Limits`` from None, a ``Limits`` or a dict of its fields."""
    from branchmerge.sandbox import Limits

    if value is None or isinstance(value, Limits):
        return value
    if isinstance(value, dict):
        try:
            return Limits(**value)
        except TypeError as exc:
            raise UserError(f"bad sandbox limits {value!r}: {exc}") from None
    raise UserError(f"limits must be a sandbox Limits or a dict, got {type(value).__name__}")


def verdict_of(sandbox_verdict: str) -> str:
    if sandbox_verdict == "accepted":
        return "correct"
    if sandbox_verdict in FAILURES:
        return "incorrect"
    return "error"  # sandbox_error: the grader failed, not the program


def run_code(jobs: list[tuple[str, dict]], limits: Any, workers: int) -> list[dict[str, Any]]:
    """Sandbox results (as dicts) for (code, tests) pairs, in order."""
    from branchmerge.sandbox import run_many

    return [r.to_dict() for r in run_many(jobs, limits_of(limits), workers=max(1, workers))]
