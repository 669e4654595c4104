"""LiveCodeBench's comparison rules, applied by the trusted supervisor (expected outputs never
enter the sandbox).

stdio: both sides ``strip()``-ed and split into lines, each line ``strip()``-ed; the line counts
must match; a line matches when the strings are equal or when its whitespace-separated tokens
all parse as ``Decimal`` and are equal (``3.0 == 3``; no epsilon; case-sensitive).
call-based: the return value (tuples already lists) ``==`` the JSON-decoded expected value.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def compare_stdio(got: str, expected: str) -> tuple[bool, str]:
    """(matches, one-line reason when it does not)."""
    g, e = _lines(got), _lines(expected)
    if len(g) != len(e):
        return False, f"expected {len(e)} line(s), got {len(g)}"
    for i, (a, b) in enumerate(zip(g, e)):
        if a == b:
            continue
        try:
            if [Decimal(t) for t in a.split()] == [Decimal(t) for t in b.split()]:
                continue
        except InvalidOperation:
            pass
        return False, f"line {i + 1}: expected {_short(b)}, got {_short(a)}"
    return True, ""


def compare_call(value: object, expected: object, apps_style: bool = False) -> tuple[bool, str]:
    """APPS/TACO store call-based outputs as ``[answer]``; with ``apps_style`` that form matches too."""
    if value == expected:
        return True, ""
    if apps_style and isinstance(expected, list) and len(expected) == 1 and value == expected[0]:
        return True, ""
    return False, f"expected {_short(repr(expected))}, got {_short(repr(value))}"
