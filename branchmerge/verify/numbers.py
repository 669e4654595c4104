"""Number spellings: thousands separators versus decimal commas, decided by the gold's shape.

"1,000" is a thousand in English and one in French; "1000,99" can only be a decimal; "-2,1" in a
MATH answer is a list of two roots. A prediction alone cannot say which, but the gold can: its
own spelling shows the convention. ``align`` rewrites a plain-number gold and a plain-number
prediction into one spelling (separators dropped, a decimal point) before they are compared;
anything that is not a plain number (a list, a tuple, an expression) is left as it is.
"""

from __future__ import annotations

import re

_SEP = r"(?:,|[ \u00a0\u202f']|\{,\}|\\,|,\\!\s?|\\!|\\ )"
_GROUPED = re.compile(rf"(?P<sign>-?)(?P<int>\d{{1,3}}(?:{_SEP}\d{{3}})+)(?P<frac>\.\d+)?")
_COMMA_DECIMAL = re.compile(r"(?P<sign>-?)(?P<int>\d+),(?P<frac>\d+)")
_POINT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def _ungroup(m: re.Match[str]) -> str:
    return m.group("sign") + re.sub(r"\D", "", m.group("int")) + (m.group("frac") or "")


def _comma_is_decimal(m: re.Match[str]) -> bool:
    """A single comma that cannot separate thousands: not three digits after it, or "0,111"."""
    return len(m.group("frac")) != 3 or m.group("int") == "0"


def _gold_comma_is_decimal(m: re.Match[str]) -> bool:
    """A gold "a,b" is a list unless its shape says decimal: "0,111", "1,22", "2,74" (two or
    more decimals), never "3,5" (read as two values) nor "1,000" (a thousand)."""
    return m.group("int") == "0" or (len(m.group("frac")) >= 2 and len(m.group("frac")) != 3)


def plain_number(text: str, comma_decimal: bool) -> str | None:
    """``text`` as a plain decimal ("1,000.5" -> "1000.5"), or None when it is not one number.
    ``comma_decimal``: the convention says a lone comma is a decimal comma ("1,000" -> "1.000")."""
    text = text.strip()
    if _POINT.fullmatch(text):
        return text
    comma = _COMMA_DECIMAL.fullmatch(text)
    if comma and (comma_decimal or _comma_is_decimal(comma)):
        return f"{comma.group('sign')}{comma.group('int')}.{comma.group('frac')}"
    grouped = _GROUPED.fullmatch(text)
    if grouped:
        return _ungroup(grouped)
    return None


# a mixed number: a whole part (digit groups allowed), one space or tab, a fraction; ``extract``
# finds these in running text with the same pattern
MIXED = r"(?P<sign>[+-]?)(?P<whole>\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)[ \t](?P<num>\d+)/(?P<den>\d+)"
_MIXED = re.compile(MIXED + r"\s*(?P<pct>\\%)?")


def mixed_number(text: str) -> str | None:
    """A plain-text mixed number as one improper fraction ("-4 4/9" -> "-\\frac{40}{9}", a percent
    sign kept); "invalid" when its fraction is not proper ("11 6/6", "4 4/0": no value at all, as
    Math-Verify reads them); None when ``text`` is not a mixed number. (LaTeX's "4\\frac{4}{9}"
    needs no help: math-verify reads it as 40/9.)"""
    m = _MIXED.fullmatch(text.strip())
    if m is None:
        return None
    num, den = int(m.group("num")), int(m.group("den"))
    if not num < den:
        return "invalid"
    whole = int(re.sub(r"\D", "", m.group("whole")))
    sign = "-" if m.group("sign") == "-" else ""
    return f"{sign}\\frac{{{whole * den + num}}}{{{den}}}{m.group('pct') or ''}"


def align(gold: str, pred: str) -> tuple[str, str]:
    """(gold, pred) with plain numbers spelled one way, by the convention the gold shows, and
    mixed numbers as improper fractions."""
    gold, pred = (m if (m := mixed_number(t)) not in (None, "invalid") else t for t in (gold, pred))
    text = gold.strip()
    comma = _COMMA_DECIMAL.fullmatch(text)
    gold_comma_decimal = bool(comma and _gold_comma_is_decimal(comma))
    if comma and not gold_comma_decimal and len(comma.group("frac")) != 3:
        return gold, pred  # "3,5": two values
    gold_number = plain_number(text, gold_comma_decimal)
    if gold_number is None:
        return gold, pred  # a list, an expression, text: compared as written
    pred_number = plain_number(pred, gold_comma_decimal)
    return gold_number, pred if pred_number is None else pred_number
