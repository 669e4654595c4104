"""Comparing one extracted math answer with its gold: fast paths, then math-verify.

The gold is parsed the way the benchmark needs it: ``int`` (AIME: a bare integer), ``latex``
(MATH-500: wrapped in ``\\boxed{}`` so math-verify's LaTeX extractor sees delimiters, see
Math-Verify#70), or ``auto`` (int when it is one). The prediction is the answer text already cut
out by ``extract.math_answer`` and is parsed the same way, so math-verify never looks at the
reasoning.

math-verify's own time-outs use ``signal.alarm`` (fails off the main thread, Math-Verify#50), so
they are switched off here and the *whole pair* runs under our own interval timer instead, which
``pool.py`` backs up by killing a worker that stops answering.
"""

from __future__ import annotations

import math
import re
import signal
import threading
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from typing import Any

from branchmerge.verify import numeric

GOLD_FORMATS = ("auto", "int", "latex")


class PairTimeout(BaseException):
    """Raised by our timer; a BaseException so math-verify's ``except Exception`` cannot eat it."""


def resolve_format(gold: str, gold_format: str) -> str:
    if gold_format not in GOLD_FORMATS:
        raise ValueError(f"gold_format {gold_format!r} is not one of {', '.join(GOLD_FORMATS)}")
    if gold_format == "auto":
        return "int" if re.fullmatch(r"\s*[+-]?\d+\s*", gold) else "latex"
    return gold_format


# ---- fast paths -------------------------------------------------------------------------------

_SPELLING = re.compile(r"\\(?:left|right|displaystyle)(?![a-zA-Z])|\$")
# drop whitespace unless it touches a letter on both sides ("\pi r" must not become "\pir") or a
# comma (math-verify reads "1,000" as 1000 but "1, 000" as a list)
_WS = re.compile(r"\s+")


def _space(m: re.Match[str]) -> str:
    before, after = m.string[m.start() - 1 : m.start()], m.string[m.end() : m.end() + 4]
    if before == "," and not re.match(r"\d{3}(?!\d)|\\[,;!: ]", after):
        return ""  # "(1, 6)" is "(1,6)", but "1, 000" (or "1, \\!000") is a list, "1,000" a thousand
    keep = "," in (before, after[:1]) or (before.isalpha() and after[:1].isalpha())
    return " " if keep else ""


_DIGIT_GROUP = re.compile(r"(?<=\d)\\[,;: !](?=\d{3}(?!\d))")


def repair(text: str) -> str:
    """Spellings math-verify misreads, rewritten before *both* the fast paths and the full check:
    repeating decimals (``0.\\overline{3}``) and thin spaces between digit groups (``1\\,000``)."""
    return _DIGIT_GROUP.sub("", _repeating_to_fraction(text))


def normalise(text: str) -> str:
    """A spelling-only normal form: ``\\left``/``\\right``, ``\\dfrac``, ``$`` and spaces, all of
    which math-verify's own LaTeX normalisation removes as well."""
    text = _SPELLING.sub(" ", text)
    text = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", text)
    return _WS.sub(_space, text.strip())


_NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<int>\d{1,9})|(?P<dec>\d{0,9}\.\d{1,9})"
    r"|\\frac\{(?P<fn>\d{1,9})\}\{(?P<fd>\d{1,9})\}|(?P<sn>\d{1,9})/(?P<sd>\d{1,9}))"
)
_ASSIGNED = re.compile(r"[a-zA-Z]=(?P<rest>.+)")


def _number(text: str) -> Fraction | None:
    """The exact value of a plain number: integer, decimal, ``\\frac{a}{b}`` or ``a/b``."""
    m = _NUMBER.fullmatch(text)
    if not m:
        return None
    if m.group("int") is not None:
        value = Fraction(int(m.group("int")))
    elif m.group("dec") is not None:
        value = Fraction(m.group("dec"))
    else:
        num, den = (m.group("fn"), m.group("fd")) if m.group("fn") is not None else (m.group("sn"), m.group("sd"))
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
    return -value if m.group("sign") == "-" else value


@lru_cache(maxsize=65536)  # n samples of one problem mostly repeat the same answer
def fast_verdict(gold: str, pred: str, gold_format: str) -> tuple[bool, str] | None:
    """A verdict the full check would give anyway, or None when the full check must run.

    - identical after ``normalise``: both sides then parse to the same objects and the same
      fallback strings, and math-verify compares those fallback strings too, so it says equal;
    - two plain numbers (integers, decimals, simple fractions; the answer may read ``x = 5``):
      equal values are equal for math-verify too; two different exact values (integers,
      fractions) are different for it (and for our exact-rational fix), and decimals clearly
      apart are far outside its 6-digit rounding. Anything in between goes on;
    - two numeric expressions (``3\\sqrt{13}`` against ``4\\sqrt{13}``, ``\\frac{\\pi}{2}+1``)
      whose values (``numeric.value``) are clearly apart: different for math-verify too. Equal
      values are never decided here: sympy's exact comparison has the last word on those;
    - the same for expressions in lone one-letter variables (``x^3+3x-6``, ``\\frac{a}{b}``), valued
      at one point: apart there, they are different functions, which sympy never calls equal;
    - two lists in the same brackets whose sets of values differ (``_lists_differ``);
    - degrees, one-variable equations and numbers in a stated base (``_same_shape_differs``).
    ``tests/test_verify_math.py`` checks every rule against the full check on the curated pairs.
    """
    fmt = resolve_format(gold, gold_format)
    g, p = normalise(repair(gold)), normalise(repair(pred))
    if not p:
        return None
    if g == p and fmt == "latex":
        return True, "fast_same_text"
    assigned = _ASSIGNED.fullmatch(p)
    rest = assigned.group("rest") if assigned else p
    gv, pv = _number(g), _number(rest)
    if gv is not None and pv is not None:
        if gv == pv:
            return True, "fast_number"
        exact = "." not in g and "." not in rest  # math-verify compares exact rationals exactly
        if exact or numeric.clearly_different(float(gv), float(pv)):
            return False, "fast_number"
        return None
    apart = _values_apart(g, rest)
    if apart:
        return False, "fast_value"
    if apart is None and _values_apart(g, p, variables=True):
        return False, "fast_symbolic"
    if _lists_differ(g, p):
        return False, "fast_list"
    return _same_shape_differs(g, p)


def _values_apart(a: str, b: str, variables: bool = False) -> bool | None:
    """Whether the values of two expressions (``numeric.value``) are clearly apart; None when
    either has none."""
    ax, bx = numeric.value(a, variables=variables), numeric.value(b, variables=variables)
    return None if ax is None or bx is None else numeric.clearly_different(ax, bx)


# a value in degrees; a one-letter variable given by an expression; digits in a stated base
_DEGREES = re.compile(r"(?P<value>[^^]+)\^\{?\\circ\}?")
_EQUATION = re.compile(r"(?P<var>[a-df-hj-z])=(?P<value>[^=<>]+)")
_BASED = re.compile(r"(?P<digits>\d+)_\{?(?P<base>\d+)\}?")


def _same_shape_differs(g: str, p: str) -> tuple[bool, str] | None:
    """Two answers of one shape that differ where that shape leaves no room for equality:
    ``120^\\circ`` and ``220^\\circ`` (degrees or radians, math-verify's value is monotone in
    the number); ``y=-2x`` and ``y=-3x`` (one variable given by expressions that do not contain
    it, apart at one point: different relations); ``4210_{5}`` and ``5210_{5}`` (the same base:
    different digits are different numbers, or different names if it keeps them as symbols)."""
    gm, pm = _DEGREES.fullmatch(g), _DEGREES.fullmatch(p)
    if gm and pm and _values_apart(gm["value"], pm["value"]):
        return False, "fast_degrees"
    gm, pm = _EQUATION.fullmatch(g), _EQUATION.fullmatch(p)
    if gm and pm and gm["var"] == pm["var"] and gm["var"] not in gm["value"] + pm["value"]:
        if _values_apart(gm["value"], pm["value"], variables=True):
            return False, "fast_relation"
    gm, pm = _BASED.fullmatch(g), _BASED.fullmatch(p)
    if gm and pm and gm["base"] == pm["base"] and gm["digits"].lstrip("0") != pm["digits"].lstrip("0"):
        return False, "fast_base"
    return None


_BRACKET = re.compile(r"\\[{}]|[][(){}]")
_INFINITY = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf}
_THOUSANDS = re.compile(r"\d,\s*\d{3}(?!\d)")  # "(1,000, 2)": a digit group or an element? not ours to say


def _list_values(text: str) -> tuple[str, str, list[float]] | None:
    """A bracketed list of plain numeric expressions ("(15,-29)", "[\\frac{1}{2},3)", "\\{1,2\\}"):
    its brackets and element values. None unless one pair of brackets encloses the whole text and
    every top-level, comma-separated element has a value."""
    opening = _BRACKET.match(text)
    if opening is None or opening.group() not in ("(", "[", "\\{") or _THOUSANDS.search(text):
        return None
    level, cuts = 0, [opening.end()]
    for i, ch in enumerate(text):  # "\{" and "\}" count as "{" and "}"
        level += (ch in "([{") - (ch in ")]}")
        if level == 0 and ch in ")]}" and i != len(text) - 1:
            return None  # "(a+5)(b+2)": the first bracket closes early
        if ch == "," and level == 1:  # a top-level comma, inside the enclosing brackets
            cuts.append(i + 1)
    if level != 0:
        return None
    closing = text[-2:] if text.endswith("\\}") else text[-1]
    bounds = zip(cuts, [c - 1 for c in cuts[1:]] + [len(text) - len(closing)])
    values = [_INFINITY.get(text[a:b].strip(), None) or numeric.value(text[a:b]) for a, b in bounds]
    if len(values) < 2 or None in values:
        return None
    return opening.group(), closing, values  # type: ignore[return-value]


def _lists_differ(gold: str, pred: str) -> bool:
    """Two lists in the same brackets whose sets of values differ: unequal for math-verify whether
    it reads them as tuples, sets or intervals (it compares tuples and sets element by element,
    intervals by their endpoints). Only empty intervals are equal with different endpoints, and it
    reads "(3,3)" and "[4,3]" as tuples, but a half-open "(5,3]" as the empty set: so a half-open
    pair decides only when it increases."""
    g, p = _list_values(gold), _list_values(pred)
    if g is None or p is None or g[:2] != p[:2]:
        return False
    gv, pv = g[2], p[2]
    half_open = g[:2] in (("(", "]"), ("[", ")"))
    if half_open and not all(len(v) != 2 or (v[1] > v[0] and _apart(*v)) for v in (gv, pv)):
        return False
    lonely = any(all(_apart(a, b) for b in pv) for a in gv)
    return lonely or any(all(_apart(b, a) for a in gv) for b in pv)


def _apart(a: float, b: float) -> bool:
    """``numeric.clearly_different``, with the infinities of interval ends apart from every other value."""
    return a != b if math.isinf(a) or math.isinf(b) else numeric.clearly_different(a, b)


# ---- the full check ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mv() -> Any:
    """Import math-verify once, with its signal-based time-outs and their warning switched off."""
    import math_verify
    import math_verify.grader
    import math_verify.parser

    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify


@lru_cache(maxsize=1)
def _configs() -> tuple[Any, Any]:
    mv = _mv()
    latex = [mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()]
    expr = [mv.ExprExtractionConfig(), mv.LatexExtractionConfig(boxed_match_priority=0)]
    return latex, expr


@lru_cache(maxsize=4096)
def parse_gold(gold: str, fmt: str) -> list[Any]:
    mv = _mv()
    if fmt == "int":
        import sympy

        try:
            return [sympy.Integer(int(gold.strip()))]
        except ValueError:
            pass  # not an integer after all: parse it like LaTeX
    return mv.parse(f"\\boxed{{{gold}}}", _configs()[0], parsing_timeout=None)


def parse_pred(pred: str) -> list[Any]:
    return _mv().parse(f"\\boxed{{{pred}}}", _configs()[0], parsing_timeout=None)


_REPEATING = re.compile(r"(?<![\\\w.])(\d*)\.(\d*)\\overline\{(\d+)\}")


def _repeating_to_fraction(text: str) -> str:
    """``5.\\overline{3}`` -> ``\\frac{16}{3}``: math-verify cannot read repeating decimals."""

    def frac(m: re.Match[str]) -> str:
        whole, fixed, rep = m.group(1) or "0", m.group(2), m.group(3)
        value = Fraction(int(whole)) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
        value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
        return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"

    return _REPEATING.sub(frac, text)


def _exact_mismatch(gold: list[Any], pred: list[Any], texts: tuple[str, str]) -> bool:
    """True when math-verify called two *different exact rationals* equal.

    Its numeric comparison rounds, so ``1/2004!`` equals ``1/2006!`` (Math-Verify#14). When
    neither side holds a float, a percent sign or a symbol, exact values must match exactly.
    """
    if any("%" in t for t in texts) or not gold or not pred:
        return False
    import sympy

    g, p = gold[0], pred[0]
    if not isinstance(g, sympy.Expr) or not isinstance(p, sympy.Expr):
        return False
    if g.free_symbols or p.free_symbols or g.atoms(sympy.Float) or p.atoms(sympy.Float):
        return False
    g, p = g.doit(), p.doit()
    return bool(g.is_Rational and p.is_Rational and g != p)


def full_check(gold: str, pred: str, gold_format: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """math-verify ``verify(parse(gold), parse(pred))`` plus two fixes; runs in a worker."""
    options = options or {}
    fmt = resolve_format(gold, gold_format)
    gold_parsed = parse_gold(repair(gold), fmt)
    if not gold_parsed:
        return {"ok": False, "rule": "gold_unparsed", "error": f"math-verify could not parse the gold {gold!r}"}
    pred_parsed = parse_pred(repair(pred))
    if options.get("strict", True) and bound_to_differ(gold_parsed, pred_parsed):
        equal, rule = False, "math_verify_values"  # what verify would say, without its simplify()
    else:
        equal, rule = _mv().verify(
            gold_parsed,
            pred_parsed,
            float_rounding=options.get("float_rounding", 6),
            numeric_precision=options.get("numeric_precision", 15),
            strict=options.get("strict", True),
            timeout_seconds=None,
        ), "math_verify"
    if equal and _exact_mismatch(gold_parsed, pred_parsed, (gold, pred)):
        equal, rule = False, "exact_rational_mismatch"
    result = {"ok": bool(equal), "rule": rule, "parsed_gold": _show(gold_parsed), "parsed_pred": _show(pred_parsed)}
    if equal and _within_tolerance(gold_parsed, pred_parsed):
        result["tolerance"] = True  # equal only after rounding (0.3333333 for 1/3): flagged for audits
    return result


# values given to free symbols when two parsed answers are compared numerically: positive, not
# integers or simple fractions, different for each symbol (two points, tried in turn)
_POINTS = ((0.5772156649, 1.3247179572, 0.8346268416, 1.6180339887, 0.7071067812, 2.2360679775, 1.2020569032),
           (1.4142135624, 0.6931471806, 2.7182818285, 0.3678794412, 1.7320508076, 0.9159655942, 1.1319882488))


def bound_to_differ(gold: list[Any], pred: list[Any]) -> bool:
    """True when math-verify's ``verify(gold, pred)`` (strict) is bound to be False, decided
    without its ``simplify`` (most of the time a wrong answer costs): no two extracted strings
    are equal, and every (gold, pred) pair of parsed expressions is plain sympy ``Expr`` (not a
    relation, set, tuple, matrix or lone symbol; no float, percentage or infinity, which
    verify compares by rounding or special rules) whose difference is clearly non-zero at a
    point. Then ``sympy_str_eq``, the numeric comparison and ``simplify(a - b) == 0`` all fail.
    """
    strings = ([g.strip() for g in gold if isinstance(g, str)], [p.strip() for p in pred if isinstance(p, str)])
    if any(a and a == b for a in strings[0] for b in strings[1]):
        return False
    exprs = ([g for g in gold if not isinstance(g, str)], [p for p in pred if not isinstance(p, str)])
    return all(_clearly_apart(a, b) for a in exprs[0] for b in exprs[1])


def _clearly_apart(a: Any, b: Any) -> bool:
    import sympy

    for e in (a, b):
        if not isinstance(e, sympy.Expr) or isinstance(e, sympy.Symbol):
            return False
        if e.has(sympy.Float, sympy.UnevaluatedExpr, sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
            return False
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if len(symbols) > len(_POINTS[0]) or any(s.assumptions0.get("integer") or not s.is_real for s in symbols):
        return False  # integer symbols: simplify may use facts a random real point ignores
    for point in _POINTS:
        subs = dict(zip(symbols, point))
        try:
            va, vb = complex(a.evalf(30, subs=subs)), complex(b.evalf(30, subs=subs))
            gap = abs(complex((a - b).evalf(30, subs=subs)))
        except (TypeError, ValueError, ArithmeticError):
            continue
        if all(map(cmath_isfinite, (va, vb))) and gap > 1e-8 * (1 + abs(va) + abs(vb)):
            return True
    return False


def cmath_isfinite(z: complex) -> bool:
    return z == z and abs(z) != float("inf")


def _within_tolerance(gold: list[Any], pred: list[Any]) -> bool:
    import sympy

    g, p = (gold[0], pred[0]) if gold and pred else (None, None)
    if not isinstance(g, sympy.Expr) or not isinstance(p, sympy.Expr) or g.free_symbols or p.free_symbols:
        return False
    if not (g.atoms(sympy.Float) or p.atoms(sympy.Float)):
        return False
    try:  # a percentage stays an unevaluated product ("25*Abs(1/100)"): read both as floats
        difference, size = float(sympy.N(sympy.Abs(g - p), 30)), float(sympy.N(sympy.Abs(g), 30))
    except (TypeError, ValueError, ArithmeticError):
        return False
    return difference > 1e-12 * max(1.0, size)


def _show(parsed: list[Any]) -> str:
    if not parsed:
        return ""
    try:
        return str(parsed[0])[:200]
    except Exception:  # printing some sympy objects can itself fail
        return "<unprintable>"


@contextmanager
def time_limit(seconds: float | None):
    """Raise ``PairTimeout`` after ``seconds`` of wall clock (main thread only; no-op elsewhere)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _fire(signum: int, frame: Any) -> None:
        raise PairTimeout()

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed_check(item: tuple[str, str, str, dict[str, Any]], timeout: float | None) -> dict[str, Any]:
    """``full_check`` under a wall-clock limit; a time-out or crash becomes a result, not an exception."""
    gold, pred, gold_format, options = item
    _configs()  # import math-verify outside the limit: a first import is not a slow check
    try:
        with time_limit(timeout):
            return full_check(gold, pred, gold_format, options)
    except PairTimeout:
        return {"ok": False, "rule": "timeout", "error": f"no verdict within {timeout:g}s"}
    except Exception as exc:  # a grader bug must cost one row, not the batch
        return {"ok": False, "rule": "check_error", "error": f"{type(exc).__name__}: {exc}"[:500]}
