"""Pulling the final answer out of an answer segment: boxed math, option letters, code blocks.

Pure string work with no heavy imports, so the parent process can decide most rows (unparsed,
fast paths, cache hits) before anything is sent to a worker. Every extractor returns the text it
found *and* the name of the rule that found it, because a verdict must say why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOX_COMMANDS = ("\\boxed", "\\fbox")
# What may sit between two boxes that together form one answer: "$\boxed{1}$ and $\boxed{2}$".
_BOX_JOINER = re.compile(r"^[\s$,;]*(?:(?:and|or|\\text\{\s*(?:and|or)\s*\}|\\quad|\\qquad)[\s$,;]*)?$")


@dataclass(frozen=True)
class Extraction:
    text: str  # the extracted answer ("" when nothing was found)
    rule: str  # which rule found it, e.g. "boxed", "final_answer_is"; "none" when nothing was


def find_boxes(text: str) -> list[tuple[int, int, str]]:
    """All complete ``\\boxed{...}``/``\\fbox{...}`` (and ``\\boxed 5``) as (start, end, content).

    Braces are matched, so nested ``\\frac{a}{b}`` survives; an unclosed box (a cut-off
    completion) is skipped rather than guessed at.
    """
    boxes = []
    pos = 0
    while True:
        starts = [(text.find(cmd, pos), cmd) for cmd in BOX_COMMANDS]
        starts = [(i, cmd) for i, cmd in starts if i >= 0]
        if not starts:
            return boxes
        start, cmd = min(starts)
        i = start + len(cmd)
        if i < len(text) and text[i].isalpha():  # \boxedsomething is another command
            pos = i
            continue
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _match_brace(text, i)
            if end < 0:
                pos = i + 1
                continue
            boxes.append((start, end + 1, text[i + 1 : end]))
            pos = end + 1
        elif cmd == "\\boxed" and i > start + len(cmd):  # "\boxed 5": one token
            m = re.match(r"[^\s$.,]+", text[i:])
            if m:
                boxes.append((start, i + m.end(), m.group(0)))
                pos = i + m.end()
            else:
                pos = i
        else:
            pos = i


def _match_brace(text: str, open_at: int) -> int:
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def last_boxed(text: str) -> Extraction | None:
    """The last box; boxes joined only by commas/"and" before it are one list answer."""
    boxes = find_boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _BOX_JOINER.match(text[prev[1] : group[0][0]]):
            break
        group.insert(0, prev)
    contents = [c.strip() for _, _, c in group]
    if len(contents) == 1:
        return Extraction(contents[0], "boxed")
    return Extraction(", ".join(contents), "boxed_multi")


_MATH_ENV = r"(?:\$\$(?P<d2>.+?)\$\$|\$(?P<d1>[^$]+?)\$|\\\((?P<p>.+?)\\\)|\\\[(?P<b>.+?)\\\])"
_PLAIN = r"(?P<plain>[^\n]+?)(?:\.\s|\.$|\n|$)"
MATH_FALLBACKS: dict[str, re.Pattern[str]] = {
    "final_answer_is": re.compile(
        rf"final answer\s*(?:is|:)\s*:?\s*(?:{_MATH_ENV}|{_PLAIN})", re.IGNORECASE | re.DOTALL
    ),
    "answer_colon": re.compile(rf"answer\s*\**\s*:\s*\**\s*(?:{_MATH_ENV}|{_PLAIN})", re.IGNORECASE | re.DOTALL),
}
DEFAULT_MATH_FALLBACKS = ("final_answer_is", "answer_colon")
_ANCHOR = re.compile(r"final|answer", re.IGNORECASE)


def _drop_full_stop(text: str) -> str:
    """``\\boxed{\\sqrt{2}.}``: math-verify reads a final full stop as part of the maths and
    fails to parse (or parses only the last element), so a lone trailing "." is removed."""
    return text[:-1].rstrip() if text.endswith(".") and not text.endswith("..") else text


def _last_anchored(pattern: re.Pattern[str], segment: str) -> str:
    """The value after the *last* place ``pattern`` matches (matches may overlap: "Final Answer:
    The final answer is $5$" must give 5, not "The final answer is $5$")."""
    for anchor in reversed(list(_ANCHOR.finditer(segment))):
        m = pattern.match(segment, anchor.start())
        if m:
            value = next((v for v in m.groupdict().values() if v), "").strip().rstrip(".").strip()
            if value:
                return value
    return ""


def math_answer(segment: str, fallbacks: tuple[str, ...] = DEFAULT_MATH_FALLBACKS) -> Extraction:
    """The final math answer: the last box, then the anchored phrases in ``fallbacks`` (last match)."""
    boxed = last_boxed(segment)
    if boxed is not None and boxed.text:
        return Extraction(_drop_full_stop(boxed.text), boxed.rule)
    for name in fallbacks:
        value = _last_anchored(MATH_FALLBACKS[name], segment)
        if value:
            return Extraction(value, name)
    return Extraction("", "none")


# ---- multiple choice -------------------------------------------------------------------------


def _letter_class(letters: str) -> str:
    return "(?-i:[" + re.escape(letters) + "])"  # letters stay upper case under IGNORECASE


def choice_letter(segment: str, letters: str, mode: str, options: dict[str, str] | None = None) -> Extraction:
    """The chosen option letter.

    strict: a boxed letter, else the last ``Answer: X``, else the last "final answer is X".
    lenient: strict first; then the last "answer is X"; then a box holding an option's text; then
    the last standalone letter.
    """
    L = _letter_class(letters)
    for box in reversed(find_boxes(segment)):
        m = re.fullmatch(rf"\s*(?:\\text(?:bf)?\{{)?\s*\(?({L})\)?\s*\}}?\s*(?:[).:]\s*.*)?", box[2], re.DOTALL)
        if m:
            return Extraction(m.group(1), "boxed")
    strict_rules = [
        ("answer_colon", rf"answer\s*\**\s*:\s*\**\s*\$?\s*(?:\\text(?:bf)?\{{)?\(?({L})\b"),
        ("final_answer_is", rf"final answer\s*(?:is|:)\s*:?\s*\**\s*\$?\s*(?:\\text(?:bf)?\{{)?\(?({L})\b"),
    ]
    for name, pattern in strict_rules:
        found = re.findall(pattern, segment, flags=re.IGNORECASE)
        found = [f.upper() for f in found if f.upper() in letters]
        if found:
            return Extraction(found[-1], name)
    if mode == "strict":
        return Extraction("", "none")
    found = re.findall(rf"answer\s+is\s*:?\s*\**\s*\$?\s*(?:\\text(?:bf)?\{{)?\(?({L})\b", segment, flags=re.IGNORECASE)
    if found:
        return Extraction(found[-1], "answer_is")
    if options:
        boxes = find_boxes(segment)
        if boxes:
            chosen = _norm_option(boxes[-1][2])
            hits = [k for k, v in options.items() if _norm_option(v) == chosen]
            if len(hits) == 1:
                return Extraction(hits[0], "boxed_option_text")
    found = re.findall(rf"(?<![A-Za-z0-9_\\]){L}(?![A-Za-z0-9_])", segment)
    if found:
        return Extraction(found[-1], "last_letter")
    return Extraction("", "none")


def _norm_option(text: str) -> str:
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return re.sub(r"[\s$]+", "", text).rstrip(".").lower()


# ---- code ------------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
PYTHON_TAGS = ("", "python", "py", "python3")


def code_block(segment: str) -> Extraction:
    """The last complete fenced block, preferring Python-tagged or untagged ones."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(segment)]
    python = [b for b in blocks if b[0] in PYTHON_TAGS]
    if python:
        return Extraction(python[-1][1], "last_fenced_block")
    if blocks:
        return Extraction(blocks[-1][1], f"last_fenced_block_{blocks[-1][0]}")
    return Extraction("", "none")
