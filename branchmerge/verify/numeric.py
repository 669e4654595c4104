"""The value of a purely numeric LaTeX answer ("3\\sqrt{13}", "\\frac{3\\pi}{4}+1"), as a float.

Used for one thing only: to prove two answers *different* without sympy, when both are plain
numbers whose values are far apart (math-verify's own numeric comparison rounds to 6 decimals,
so values 1e-5 apart are unequal for it too). The grammar is deliberately small: numbers,
``\\pi``, ``\\frac``/``\\dfrac``/``\\tfrac``, ``\\sqrt`` (with an optional index), ``+ - * / ^``,
``\\cdot``/``\\times``/``\\div``, parentheses and ``\\left``/``\\right``; on request, lone
one-letter variables, valued at one fixed point. Anything else (a longer name, a percent or degree
sign, a comma, a subscript, an ambiguous ``2^10``) gives None and the full check decides.
"""

from __future__ import annotations

import math
import re

_TOKEN = re.compile(
    r"\s+|\\[,;:! ]|\\left|\\right"  # skipped
    r"|(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<cmd>\\[a-zA-Z]+)"
    r"|(?P<op>[-+*/^(){}\[\]])"
    r"|(?P<var>[a-z])"
)
# One point at which expressions in one-letter variables are compared: irrational-looking values,
# all different, so "x + 1" and "y + 1" (or "x^2" and "x") are apart there. Two expressions
# apart at one point are different functions, and so unequal for sympy too. Not "e" and "i"
# (math-verify reads them as constants).
_POINT = {v: 0.61803398875 + 0.2718281828 * k + 0.0314159265 * k * k for k, v in enumerate("abcdfghjklmnopqrstuvwxyz")}
_COMMANDS = {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac", "\\sqrt", "\\pi", "\\cdot", "\\times", "\\div"}
_FRACTIONS = ("\\frac", "\\dfrac", "\\tfrac", "\\cfrac")
_LIMIT = 1e12  # beyond this, float rounding could hide a difference math-verify would see


class _Unsupported(Exception):
    pass


def _tokens(text: str, variables: bool) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Unsupported(text[pos])
        pos = m.end()
        if m.group("var") is not None:
            # a lone letter only: "ab", "sin", "f(x)" may be names or calls for math-verify, and
            # a product here; "e" and "i" are constants there
            before, after = text[m.start() - 1 : m.start()], text[pos : pos + 1]
            if not variables or m.group("var") not in _POINT or before.isalpha() or after.isalpha() or after == "(":
                raise _Unsupported(m.group("var"))
            out.append(m.group("var"))
            continue
        if m.group("num") is not None:
            if out and re.fullmatch(r"[\d.]+", out[-1]):
                raise _Unsupported("two numbers in a row")  # "2 3", "1\,000": not ours to read
            out.append(m.group("num"))
        elif m.group("cmd") is not None:
            if m.group("cmd") not in _COMMANDS:
                raise _Unsupported(m.group("cmd"))
            out.append(m.group("cmd"))
        elif m.group("op") is not None:
            out.append(m.group("op"))
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Unsupported(f"expected {expected}")
        self.i += 1
        return token

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> float:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "\\cdot", "\\times"):
                self.take()
                value *= self.unary()
            elif token in ("/", "\\div"):
                self.take()
                value = _div(value, self.unary())
            elif token in _FRACTIONS and re.fullmatch(r"[\d.]+", self.tokens[self.i - 1]):
                raise _Unsupported("mixed number")  # "2\frac{1}{2}" is 2.5 for math-verify
            elif token in ("(", "\\pi", "\\sqrt", *_FRACTIONS) or token in _POINT:
                value *= self.power()  # implicit product: 3\sqrt{13}, 2\pi, 2(3), 3x
            else:
                return value

    def unary(self) -> float:
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        if self.peek() == "{":
            exponent = self.group()
        else:
            token = self.take()
            if not re.fullmatch(r"\d", token):
                raise _Unsupported("exponent")  # "2^10" is 2^1 0 in LaTeX: leave it to sympy
            exponent = float(token)
        if abs(exponent) > 64 or (base < 0 and exponent != int(exponent)):
            raise _Unsupported("power")
        return base**exponent

    def group(self) -> float:
        self.take("{")
        value = self.expr()
        self.take("}")
        return value

    def argument(self) -> float:
        """A command's argument: a braced group or a single digit ("\\frac43", "\\sqrt2")."""
        if self.peek() == "{":
            return self.group()
        token = self.take()
        if re.fullmatch(r"\d+", token):
            self.tokens[self.i - 1 : self.i] = list(token)  # "\frac43" -> \frac 4 3: one digit each
            return float(token[0])
        if token == "\\pi":
            return math.pi
        raise _Unsupported("argument")

    def atom(self) -> float:
        token = self.take()
        if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", token):
            return float(token)
        if token == "\\pi":
            return math.pi
        if token in _POINT:
            return _POINT[token]
        if token in ("(", "{"):
            value = self.expr()
            self.take({"(": ")", "{": "}"}[token])
            return value
        if token in _FRACTIONS:
            return _div(self.argument(), self.argument())
        if token == "\\sqrt":
            index = 2.0
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
            value = self.argument()
            if value < 0 or index not in (2.0, 3.0, 4.0):
                raise _Unsupported("root")
            return value ** (1 / index)
        raise _Unsupported(token)


def _div(a: float, b: float) -> float:
    if b == 0:
        raise _Unsupported("division by zero")
    return a / b


def value(text: str, variables: bool = False) -> float | None:
    """The value of ``text`` when it is a plain numeric expression of the supported grammar; with
    ``variables``, lone lowercase letters count too, each at its value in ``_POINT``."""
    try:
        parser = _Parser(_tokens(text, variables))
        result = parser.expr()
        if parser.peek() is not None:
            return None
    except (_Unsupported, OverflowError, ValueError, ZeroDivisionError, IndexError):
        return None
    return result if math.isfinite(result) and abs(result) < _LIMIT else None


def clearly_different(a: float, b: float) -> bool:
    """Too far apart for any rounding math-verify applies (6 decimals) or float error here."""
    gap = abs(a - b)
    return gap > 1e-5 and gap > 1e-9 * max(abs(a), abs(b))
