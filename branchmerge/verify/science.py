"""Science answers: multiple-choice letters (strict and lenient), option shuffles, quantities.

GPQA scores swing by ~10 points with the extraction regex (reference/evaluation.md §1.4, §3 #12),
so every mode is always computed and stored; ``science_mode`` only picks which one sets the
row's verdict. ``last_letter`` is the TinyR1 release's (SkyThought's ``get_multiple_choice_answer``):
the last standalone option letter anywhere in the upper-cased text, whatever the text says of it. Shuffles are a pure function of (problem id, sample index, seed) and the
permutation is stored in the shuffled reference, so any run can be regraded later (evalscope#1579).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from branchmerge.verify.choice import choice_letter

MODES = ("strict", "lenient", "last_letter")


def is_choice(reference: Any) -> bool:
    """Multiple choice: options given, or no options and a lone capital letter as the answer."""
    if not isinstance(reference, dict):
        return False
    if isinstance(reference.get("options"), dict) and reference["options"]:
        return True
    return bool(re.fullmatch(r"[A-Z]", str(reference.get("answer", "")).strip()))


def letters_of(reference: dict[str, Any]) -> str:
    if isinstance(reference.get("letters"), str):
        return reference["letters"]
    options = reference.get("options")
    if isinstance(options, dict) and options:
        return "".join(sorted(options))
    last = max("D", str(reference["answer"]).strip())
    return "".join(chr(c) for c in range(ord("A"), ord(last) + 1))


def grade_choice(segment: str, reference: dict[str, Any], mode: str) -> tuple[str, dict[str, Any]]:
    """(verdict, detail) for one answer segment; detail holds both modes."""
    gold = str(reference["answer"]).strip().upper()
    letters = letters_of(reference)
    options = reference.get("options") if isinstance(reference.get("options"), dict) else None
    detail: dict[str, Any] = {"gold": gold, "mode": mode}
    for name in MODES:
        if name == "last_letter":
            text, rule = last_letter(segment, letters), "last_letter"
        else:
            found = choice_letter(segment, letters, name, options)
            text, rule = found.text, found.rule
        verdict = "unparsed" if not text else "correct" if text == gold else "incorrect"
        detail[name] = {"extracted": text, "rule": rule, "verdict": verdict}
    chosen = detail[mode]
    detail["extracted"] = chosen["extracted"]
    detail["rule"] = chosen["rule"]
    return chosen["verdict"], detail


def last_letter(text: str, letters: str) -> str:
    """The last standalone option letter of the upper-cased text ('' when none)."""
    found = re.findall(rf"\b([{re.escape(letters)}])\b", text.upper())
    return found[-1] if found else ""


def mode_detail(verdict: str, rule: str) -> dict[str, Any]:
    """The strict/lenient entries for a row decided before extraction (truncated, error)."""
    return {name: {"extracted": "", "rule": rule, "verdict": verdict} for name in MODES}


def shuffle_options(reference: dict[str, Any], problem_id: str, sample_idx: int, seed: int) -> dict[str, Any]:
    """A new reference with the options re-lettered by a permutation fixed by the three keys.

    ``permutation[i]`` is the original letter now shown as the i-th letter, so the original
    order can always be recovered from a stored row.
    """
    options = reference.get("options")
    if not isinstance(options, dict) or not options:
        raise ValueError("shuffle_options needs a reference with a non-empty 'options' dict")
    answer = str(reference.get("answer", "")).strip().upper()
    if answer not in options:
        raise ValueError(f"answer {answer!r} is not one of the options {', '.join(sorted(options))}")
    letters = sorted(options)
    digest = hashlib.sha256(f"{problem_id}\x1f{sample_idx}\x1f{seed}".encode()).digest()
    order = list(letters)
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    shuffled = {new: options[old] for new, old in zip(letters, order)}
    return {
        **reference,
        "options": shuffled,
        "answer": letters[order.index(answer)],
        "permutation": order,
    }


# ---- free-form quantities ("3.2 m/s") ---------------------------------------------------------

_NUMBER = (
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
    r"(?:\s*(?:\\times|\\cdot|×)\s*10\s*\^\s*\{?\s*[+-]?\d+\s*\}?|\s*[eE]\s*[+-]?\d+)?"
)
_QUANTITY = re.compile(rf"\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*")
_UNIT = re.compile(r"(?:\\(?:text|mathrm|rm|mu|Omega|circ|AA|cdot|,|;|\s|%)(?![A-Za-z])|[A-Za-zµμΩ°%/^{}\-\s()·*.]|\d)*")


def split_quantity(text: str) -> tuple[str, str] | None:
    """(number as LaTeX, unit text; "" when none) when ``text`` is a number with an optional unit.

    ``6.02e23`` becomes ``6.02\\times 10^{23}`` (LaTeX would read ``e`` as Euler's number).
    """
    m = _QUANTITY.fullmatch(text)
    if not m:
        return None
    unit = m.group("unit")
    if unit and (not re.search(r"[A-Za-zµμΩ°%]", unit) or not _UNIT.fullmatch(unit)):
        return None
    number = re.sub(r"\s*[eE]\s*([+-]?\d+)$", r"\\times 10^{\1}", m.group("num").strip())
    return number, m.group("unit").strip()


def unit_key(unit: str) -> str:
    """A unit spelled without LaTeX wrappers and spaces, for the record only."""
    unit = re.sub(r"\\(?:text|mathrm|rm)\s*\{([^{}]*)\}", r"\1", unit)
    return re.sub(r"[\s{}\\,;]", "", unit)
