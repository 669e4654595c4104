"""Pulling the final answer out of an answer segment: boxed math, stated answers, code blocks.

Pure string work with no heavy imports, so the parent process can decide most rows (unparsed,
fast paths, cache hits) before anything is sent to a worker. Every extractor returns the text it
found *and* the name of the rule that found it, because a verdict must say why.

The math answer is the first of these that exists (``math_answer``):

1. ``boxed`` / ``boxed_multi``: the last ``\\boxed{}``; boxes before it that are joined to it by
   short connective text ("and", "or", ",", "for part (a) and", ``\\) and \\( y_2 =``) are one
   multi-part answer, listed in order.
2. ``final_answer_after_box``: an explicit final-answer statement ("The final answer is $X$",
   "Réponse finale : X", "最终答案是 X") *after* that box wins over it. Rationale: a statement
   labelled final that the model writes after a box is its last commitment, so the box was
   working ("... \\boxed{200} ... The final answer is $10,455$"). Only "final answer" phrases
   have this power, not a bare "answer" (often a restatement of one part); math-verify gives
   boxes and "final answer" statements one priority, so its later match wins too.
3. ``final_answer``, then ``answer``: the last explicit statement anchored by a final-answer
   phrase, then by an answer word, in English and the languages in ``anchors``. The value is the
   first mathematical expression after the anchor in that sentence, followed along copulas
   ("Final Answer: The largest $n$ is 34" -> 34).
4. ``last_expression``: the last mathematical expression of the segment (a LaTeX environment, a
   bare ``\\frac``, a number, a mixed number such as "4 4/9", or a simple arithmetic expression),
   as math-verify's own unanchored extraction does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from branchmerge.verify import anchors, numbers

BOX_COMMANDS = ("\\boxed", "\\fbox")


@dataclass(frozen=True)
class Extraction:
    text: str  # the extracted answer ("" when nothing was found)
    rule: str  # which rule found it, e.g. "boxed", "final_answer"; "none" when nothing was


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


# ---- box groups ---------------------------------------------------------------------------------

CONNECTIVES = {"and", "or", "und", "oder", "et", "ou", "y", "o", "e", "и", "или", "和", "或", "及", "以及", "与",
               "و", "أو", "और", "या", "ve", "veya", "dan", "atau", "và", "hoặc", "&"}
_GAP_NOISE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}|\\(?:quad|qquad|[,;:! ])|\\[()\[\]]|\$|\\\\")
_GAP_TOKEN = re.compile(r"\([a-z0-9]{1,4}\)|[^\W_]+(?:_\{?\w+\}?)?|[^\s\w]")
_GAP_PUNCTUATION = {",", ";", "，", "；", "、", "="}


def _box_gap_joins(gap: str) -> bool:
    """Whether the text between two boxes makes them one answer: nothing at all, or a short
    run (at most four words) of punctuation and at most one connective, with labels allowed
    ("for part (a) and", ``\\) and \\( y_2 =``). Whitespace alone, a sentence end or a longer
    phrase separates them."""
    if not gap:
        return True
    text = _GAP_NOISE.sub(lambda m: f" {m.group(1)} " if m.group(1) is not None else " ", gap)
    tokens = _GAP_TOKEN.findall(text.lower())
    words = [t for t in tokens if t[0].isalnum() or t[0] == "("]
    connectives = [t for t in tokens if t in CONNECTIVES]
    punctuation = [t for t in tokens if t in _GAP_PUNCTUATION]
    others = [t for t in tokens if not (t[0].isalnum() or t[0] == "(" or t in CONNECTIVES or t in _GAP_PUNCTUATION)]
    return bool(connectives or punctuation) and len(connectives) <= 1 and len(words) <= 4 and not others


def last_box_group(text: str, boxes: list[tuple[int, int, str]] | None = None) -> tuple[int, int, Extraction] | None:
    """(start, end, extraction) of the last box and the boxes joined to it."""
    boxes = find_boxes(text) if boxes is None else boxes
    boxes = [b for b in boxes if b[2].strip()]
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _box_gap_joins(text[prev[1] : group[0][0]]):
            break
        group.insert(0, prev)
    contents: list[str] = []
    for _, _, content in group:
        content = drop_full_stop(content.strip())
        if not contents or contents[-1] != content:  # "\boxed{4} ... \boxed{4}" is one answer
            contents.append(content)
    rule = "boxed" if len(contents) == 1 else "boxed_multi"
    return group[0][0], group[-1][1], Extraction(", ".join(contents), rule)


def drop_full_stop(text: str) -> str:
    """``\\boxed{\\sqrt{2}.}``: math-verify reads a final full stop as part of the maths and
    fails to parse (or parses only the last element), so a lone trailing "." is removed."""
    return text[:-1].rstrip() if text.endswith(".") and not text.endswith("..") else text


# ---- mathematical expressions in running text --------------------------------------------------

_ENV = re.compile(
    r"(?<!\\)\$\$(?P<dd>.+?)(?<!\\)\$\$"
    r"|(?<!\\)\\\[(?P<db>.+?)\\\]"
    r"|(?<![\\$\d])\$(?P<id>(?:\\\$|[^$\n])+?)(?<!\\)\$"
    r"|(?<!\\)\\\((?P<ip>(?:(?!\\\))[^\n])+)\\\)",
    re.DOTALL,
)
# math that is not a valid environment (an inline "$" or "\(" pair across lines): no answer is
# dug out of it (math-verify reads no inline maths across lines either)
_MALFORMED = re.compile(r"(?<![\\\d])\$[^$]*\n[^$]*(?<!\\)\$|\\\((?:(?!\\\)).)*\n(?:(?!\\\)).)*\\\)", re.DOTALL)
_ENV_PERCENT = re.compile(r"\s*(?:\\?%|percent(?:age)?\b|pct\b)", re.IGNORECASE)
_ENV_JOIN = re.compile(r"\s*(?:,\s*)?(?:and|or|,)\s*$", re.IGNORECASE)
_BARE_LATEX = re.compile(r"-?\\[dtc]?frac\s*\{[^{}]*\}\s*\{[^{}]*\}|-?\\sqrt\s*\{[^{}]*\}")
_NUM = (
    r"-?(?:\d{1,3}(?:(?:,|[ \u00a0\u202f']|\{,\}|\\,|,\\!\s?|\\!)\d{3})+(?:\.\d+)?(?![\d,])"
    r"|\d+(?:[.,]\d+)?|\.\d+)"
)
_NUMBER_EXPR = re.compile(
    r"(?<![A-Za-z0-9_.,\\^{}/])"
    rf"(?P<value>{_NUM}(?:\s*[-+*/×÷^]\s*{_NUM})*(?:\s*(?:\\?%|percent(?:age)?\b|pct\b))?)"
    r"(?![\d])"
)
# a mixed number written outside maths: "4 4/9", "-1 000 4/9", "4 4/9%" (one value, not 4 and
# 4/9). One space or tab only: a line break, a decimal or fractional whole part, or brackets
# ("11/10 4/9", "11.0 4/9", "(11) 4/9") make two numbers, as Math-Verify's own tests have it
_MIXED = re.compile(
    rf"(?<![\w.,/\\^{{}}()\[\]]){numbers.MIXED}(?![\d/]|[.,]\d)(?:\s*(?:\\?%|percent(?:age)?\b|pct\b))?"
)
# a tuple or interval of plain numbers written outside maths: "(1, 2)", "[-1, 3)"
_PLAIN_TUPLE = re.compile(rf"(?<![\w\\])[(\[]\s*{_NUM}(?:\s*,\s*{_NUM})+\s*[)\]]")
# what joins plain numbers into one listed answer: "2, 3, and 5", "2 or 3", "-1; 4"
_LIST_GAP = re.compile(r"\s*(?:,\s*(?:and|or)?|;|and|or|&)\s*", re.IGNORECASE)
_PERCENT_WORD = re.compile(r"(?<=\d)\s*(?:percent(?:age)?|pct)\b|(?<=\d)\s*(?<!\\)%", re.IGNORECASE)
_STOPS = ".!?।؟"  # end a sentence when followed by a space or the end
_CJK_STOPS = "。！？"  # end a sentence wherever they are


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    value: str


def _clean(value: str) -> str:
    value = value.strip().strip("*").strip()
    value = _PERCENT_WORD.sub(r"\\%", value)
    return drop_full_stop(value.replace("×", "\\times ").replace("÷", "\\div ")).strip()


def _env_value(m: re.Match[str]) -> str:
    content = next(v for v in m.groupdict().values() if v is not None)
    group = last_box_group(content)
    return group[2].text if group else content


def candidates(text: str) -> list[_Candidate]:
    """Every mathematical expression of ``text`` in order: LaTeX environments (envs joined by
    "and"/"or"/"," form one list; a percent sign after one belongs to it), bare ``\\frac``/
    ``\\sqrt``, numbers and simple expressions outside environments ("1,000.99", "3 + 10", "25%")."""
    found: list[_Candidate] = []
    masked = list(text)

    def mask(start: int, end: int) -> None:
        masked[start:end] = " " * (end - start)

    for m in _ENV.finditer(text):
        mask(m.start(), m.end())
        value, end = _clean(_env_value(m)), m.end()
        percent = _ENV_PERCENT.match(text, end)
        if percent and value:
            value, end = value + "\\%", percent.end()
            mask(m.end(), end)
        if not value:
            continue
        if found and _ENV_JOIN.match(text[found[-1].end : m.start()]):
            prev = found.pop()
            found.append(_Candidate(prev.start, end, f"{prev.value}, {value}"))
        else:
            found.append(_Candidate(m.start(), end, value))
    for m in _MALFORMED.finditer("".join(masked)):
        mask(m.start(), m.end())
    for m in _BARE_LATEX.finditer("".join(masked)):
        found.append(_Candidate(m.start(), m.end(), _clean(m.group(0))))
        mask(m.start(), m.end())
    for m in _MIXED.finditer("".join(masked)):
        found.append(_Candidate(m.start(), m.end(), _clean(m.group(0))))
        mask(m.start(), m.end())
    for m in _PLAIN_TUPLE.finditer("".join(masked)):
        found.append(_Candidate(m.start(), m.end(), _clean(m.group(0))))
        mask(m.start(), m.end())
    numbers: list[_Candidate] = []
    for m in _NUMBER_EXPR.finditer("".join(masked)):
        value = _clean(m.group(0))
        if numbers and _LIST_GAP.fullmatch(text, numbers[-1].end, m.start()):
            # "2, 3, and 5" is one listed answer, not 2 (math-verify reads 2 and would pass a
            # gold of 2); "1, 000" stays a list too, as math-verify reads it
            prev = numbers.pop()
            numbers.append(_Candidate(prev.start, m.end(), f"{prev.value}, {value}"))
        else:
            numbers.append(_Candidate(m.start(), m.end(), value))
    found += numbers
    return sorted((c for c in found if c.value), key=lambda c: (c.start, -c.end))


def _sentence_end(text: str, pos: int) -> int:
    """Where the sentence that starts at ``pos`` ends (environments are never cut)."""
    spans = [(m.start(), m.end()) for m in _ENV.finditer(text, pos)]
    begun = False
    i = pos
    while i < len(text):
        if spans and spans[0][0] == i:
            i = spans.pop(0)[1]
            begun = True
            continue
        while spans and spans[0][0] < i:
            spans.pop(0)
        ch = text[i]
        if begun and (ch == "\n" or ch in _CJK_STOPS or (ch in _STOPS and (i + 1 == len(text) or text[i + 1].isspace()))):
            return i
        begun = begun or not ch.isspace()
        i += 1
    return len(text)


def statement_value(text: str, anchor_end: int, unlinked_words: int = 1) -> _Candidate | None:
    """The value an anchor introduces: the first expression of its sentence, at most six words
    on when a colon or copula links it ("Réponse : Janeth aura encore 220 $"), else at most
    ``unlinked_words`` ("Answer $9$"), followed along copulas ("$n$ is 34" -> 34)."""
    link, max_words = anchors.ANCHOR_LINK_RE.match(text, anchor_end), 6
    if link is None:
        link, max_words = anchors.ANCHOR_SPACE_RE.match(text, anchor_end), unlinked_words
    start = link.end()
    end = min(_sentence_end(text, start), start + 400)
    tail = text[start:end]
    found = candidates(tail)
    if not found or len(re.findall(r"\w+", tail[: found[0].start])) > max_words:
        return None
    if anchors.NEGATION_RE.search(tail[: found[0].start]):
        return None  # "the answer is not 5; it is 6": the value named here is the rejected one
    chosen = found[0]
    for nxt in found[1:]:
        if not anchors.COPULA_GAP_RE.fullmatch(tail[chosen.end : nxt.start]):
            break
        chosen = nxt
    return _Candidate(start + chosen.start, start + chosen.end, chosen.value)


def _last_statement(pattern: re.Pattern[str], segment: str, after: int = 0, unlinked_words: int = 1) -> _Candidate | None:
    for anchor in reversed(list(pattern.finditer(segment, after))):
        value = statement_value(segment, anchor.end(), unlinked_words)
        if value is not None:
            return value
    return None


MATH_RULES = ("final_answer", "answer", "last_expression")  # after the box, in this order


def math_answer(segment: str, rules: tuple[str, ...] = MATH_RULES) -> Extraction:
    """The final math answer of an answer segment, by the priority chain in the module doc."""
    group = last_box_group(segment)
    if group is not None:
        start, end, boxed = group
        if "final_answer" in rules:
            later = _last_statement(anchors.FINAL_ANSWER_RE, segment, end, unlinked_words=6)
            if later is not None and later.value != boxed.text:
                return Extraction(later.value, "final_answer_after_box")
        return boxed
    # a final-answer phrase is a heading too ("**Final Answer**\nThe largest $n$ is 34")
    for rule, pattern, words in (("final_answer", anchors.FINAL_ANSWER_RE, 6), ("answer", anchors.ANSWER_RE, 1)):
        if rule in rules:
            found = _last_statement(pattern, segment, unlinked_words=words)
            if found is not None:
                return Extraction(found.value, rule)
    if "last_expression" in rules:
        found_all = sorted(candidates(segment), key=lambda c: (c.end, -c.start))
        # a rounded restatement ("$\frac{1}{6}$, or about 16.7%") gives way to the value before it
        exact = [c for c in found_all if not anchors.APPROXIMATION_RE.search(segment[max(0, c.start - 20) : c.start])]
        if exact or found_all:
            return Extraction((exact or found_all)[-1].value, "last_expression")
    return Extraction("", "none")


_PART_JOIN = re.compile(r"\s*(?:\\q?quad\s*|\\[,;]\s*)*(?:\\text\{\s*(?:and|or)\s*\}|\\(?:and|or)\b)(?:\s*\\q?quad|\s*\\[,;])*\s*")


def join_parts(text: str) -> str:
    """Groups of assignments written with a text connective ("p = 5, q = 2 \\quad \\text{and}
    \\quad p = 7, q = 2") as math-verify's list of groups ("p=5, q=2; p=7, q=2"): read as they
    are, the connective is lost and the groups melt into one set of four equations. Only when
    every part is itself a comma list; other connectives are left to math-verify."""
    parts = _PART_JOIN.split(text)
    if len(parts) < 2 or not all("," in part and "=" in part for part in parts):
        return text
    return "; ".join(part.strip() for part in parts)


_DELIMITER = re.compile(r"(?<!\\)\$\$?|\\[()\[\]]")


def reference_answer(gold: str) -> str:
    """A gold reduced to its bare answer: the final box group of a boxed or worked gold, else
    the one maths environment (or list of them) that makes up the gold, else the gold with its
    maths delimiters removed ("$125$ miles" -> "125 miles"). A bare gold comes back as it is."""
    group = last_box_group(gold)
    if group is not None:
        return group[2].text
    if not _DELIMITER.search(gold):
        return gold.strip()
    stripped = gold.strip().rstrip(".").strip()
    found = candidates(stripped)
    if len(found) == 1 and found[0].start == 0 and found[0].end == len(stripped):
        return found[0].value
    return _DELIMITER.sub(" ", stripped).strip()


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
