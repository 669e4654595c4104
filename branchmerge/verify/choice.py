"""Which option letter a multiple-choice answer chose, read strictly or leniently.

strict reads only plain statements of one letter, in this order:
  ``boxed`` (``\\boxed{B}``, ``\\boxed{\\text{(B)}}``), then the last anchored statement
  (``final_answer``/``answer``: "Answer: B", 'Answer: "C"', "the correct answer is (C)",
  "I think the answer is for sure D", "réponse est C", "答案是 B"), then ``leading_letter`` (the
  answer *is* a letter: "C", "(B) Au", "D. it can't be A or B", "B。不是 A"), then ``it_is`` (the
  segment ends by saying what it is: "... therefore I think it's B").
lenient adds, after strict: ``boxed_option_text`` (a box holding one option's text), then
  ``last_letter``: the last standalone letter that the text does not reject ("it can't be A or
  B", "not A", "non A", "不是 A" reject A and B), skipping the article "A" before a word.
Lower-case letters never count ("answer: b is my guess" is prose).
"""

from __future__ import annotations

import re
from functools import lru_cache

from branchmerge.verify import anchors
from branchmerge.verify.extract import Extraction, find_boxes

_OPEN = r"(?:\*\*|__|[\"'“‘«(\[$]|\\text(?:bf)?\{|\\mathrm\{|<b>|\s)*"
_CLOSE = r"(?:\*\*|__|[\"'”’»)\]$}]|</b>)*"
_OPTION_ANCHOR = re.compile(
    r"(?<![A-Za-z])(?:(?:correct|right|best)\s+(?:option|choice)|option|choice)(?![A-Za-z])", re.IGNORECASE)
_OPTION_IS_CORRECT = r"\s+is\s+(?:the\s+)?(?:correct|right|best|true|valid|answer)(?![A-Za-z])"
_IT_IS = re.compile(r"(?<![A-Za-z])(?:it's|it\s+is|it\s+must\s+be|it\s+should\s+be)\s*$", re.IGNORECASE)


@lru_cache(maxsize=64)
def _patterns(letters: str) -> dict[str, re.Pattern[str]]:
    letter = "[" + re.escape(letters) + "]"
    end = r"(?![A-Za-z0-9])"
    return {
        # a letter as a whole answer token: "B", "(B)", '"C"', "**D**", "$B$", "\text{B}"
        "form": re.compile(rf"{_OPEN}(?P<letter>{letter}){_CLOSE}{end}"),
        "box": re.compile(rf"\s*(?:\\text(?:bf)?\{{)?\s*\(?(?P<letter>{letter})\)?\s*\}}?\s*(?:[).:]\s*.*)?", re.DOTALL),
        "leading": re.compile(rf"\s*{_OPEN}(?P<letter>{letter}){_CLOSE}(?:$|[.:)。，,、]|(?=[^\x00-\x7f]))"),
        # "Option B is correct", "Because B is valid": the letter is affirmed as the answer
        "option_is": re.compile(rf"(?<![A-Za-z0-9_\\])(?:(?i:option|choice)\s*)?{_OPEN}(?P<letter>{letter}){_CLOSE}"
                                rf"(?i:{_OPTION_IS_CORRECT})"),
        "standalone": re.compile(rf"(?<![A-Za-z0-9_\\]){letter}(?![A-Za-z0-9_])"),
        # a negation, then letters joined by "or"/"and"/","/...: all of them are rejected
        "rejected": re.compile(
            rf"(?:{anchors.NEGATION_RE.pattern})\s*(?:(?:be|is|est|es|是)\s+)?(?:(?:option|choice)\s+)?"
            rf"(?:{_OPEN}(?-i:{letter}){_CLOSE}\s*(?:,|or|and|nor|ni|ou|et|o|y|或|和|、|/)\s*)*{_OPEN}$",
            re.IGNORECASE),
    }


def _statement(segment: str, anchor_end: int, p: dict[str, re.Pattern[str]]) -> tuple[int, str] | None:
    """(position, letter) an anchor states: right after it, or at most three filler words on
    when a colon or copula links them ("the answer is for sure D"); never a negated one."""
    link = anchors.ANCHOR_LINK_RE.match(segment, anchor_end)
    start = link.end() if link else anchors.ANCHOR_SPACE_RE.match(segment, anchor_end).end()
    window = segment[start : start + 60]
    m = p["form"].search(window)
    if m is None:
        return None
    filler = window[: m.start()]
    words = len(re.findall(r"\w+", filler))
    if words > (3 if link else 0) or anchors.NEGATION_RE.search(filler) or re.search(r"[.\n]", filler):
        return None
    position = start + m.start("letter")
    if _rejected(segment, position, p):
        return None
    return position, m.group("letter")


def _rejected(segment: str, pos: int, p: dict[str, re.Pattern[str]]) -> bool:
    """Whether the text rejects the letter at ``pos`` ("not A", "can't be A or B", "A is wrong")."""
    before = segment[max(0, pos - 48) : pos]
    if p["rejected"].search(before) or anchors.REJECTED_CHAIN_RE.search(before):
        return True
    return bool(anchors.REJECTED_AFTER_RE.match(segment, pos + 1))


def choice_letter(segment: str, letters: str, mode: str, options: dict[str, str] | None = None) -> Extraction:
    """The chosen option letter (see the module doc for the rules and their order)."""
    p = _patterns(letters)
    boxes = find_boxes(segment)
    for box in reversed(boxes):
        m = p["box"].fullmatch(box[2])
        if m:
            return Extraction(m.group("letter"), "boxed")
    stated: list[tuple[int, str, str]] = []  # (position, rule, letter): the latest statement wins
    for rule, pattern in (("final_answer", anchors.FINAL_ANSWER_RE), ("answer", anchors.ANSWER_RE),
                          ("answer", _OPTION_ANCHOR)):
        for anchor in pattern.finditer(segment):
            found = _statement(segment, anchor.end(), p)
            if found is not None:
                stated.append((found[0], rule, found[1]))
    for m in p["option_is"].finditer(segment):
        if not _rejected(segment, m.start("letter"), p):
            stated.append((m.start("letter"), "answer", m.group("letter")))
    tail = re.search(rf"{_OPEN}([{re.escape(letters)}]){_CLOSE}\s*[.!]?\s*$", segment)
    if tail and _IT_IS.search(segment[: tail.start(1)].rstrip(" *\"'(")) and not _rejected(segment, tail.start(1), p):
        stated.append((tail.start(1), "it_is", tail.group(1)))
    if stated:
        _, rule, letter = max(stated)
        return Extraction(letter, rule)
    lead = p["leading"].match(segment)
    if lead:
        return Extraction(lead.group("letter"), "leading_letter")
    if mode == "strict":
        return Extraction("", "none")
    if options and boxes:
        chosen = _norm_option(boxes[-1][2])
        hits = [k for k, v in options.items() if _norm_option(v) == chosen]
        if len(hits) == 1:
            return Extraction(hits[0], "boxed_option_text")
    for m in reversed(list(p["standalone"].finditer(segment))):
        article = m.group(0) == "A" and re.match(r" [a-z]", segment[m.end() : m.end() + 2])
        if not article and not _rejected(segment, m.start(), p):
            return Extraction(m.group(0), "last_letter")
    return Extraction("", "none")


_OPTION_GOLD = re.compile(r"\s*(?:\\text(?:bf)?\{|\\mathrm\{)?\s*\(?([A-Z])\)?\s*\}?\s*")


def option_letter(gold: str) -> str | None:
    """The letter of a gold that is an option label ("C", "(C)", "\\text{(C)}"), else None."""
    m = _OPTION_GOLD.fullmatch(gold)
    return m.group(1) if m else None


def _norm_option(text: str) -> str:
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return re.sub(r"[\s$]+", "", text).rstrip(".").lower()
