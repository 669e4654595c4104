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
    """(matches, one-line reason when it does not). Lines and tokens are counted before anything
    is split, so the work and memory are bounded by the expected output, whatever the program
    printed (16 MiB of one-character lines would otherwise be millions of objects)."""
    n_got, n_expected = got.strip().count("\n") + 1, expected.strip().count("\n") + 1
    if n_got != n_expected:
        return False, f"expected {n_expected} line(s), got {n_got}"
    for i, (a, b) in enumerate(zip(_lines(got), _lines(expected))):
        if a == b:
            continue
        want = b.split()
        have = a.split(maxsplit=len(want))
        try:
            if len(have) == len(want) and all(Decimal(x) == Decimal(y) for x, y in zip(have, want)):
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
