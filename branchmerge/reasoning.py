"""Splitting an R1-style completion into its reasoning and its answer.

Both the engines (to fill ``reasoning``/``answer``) and the verifiers (to grade only the answer)
need the same rule, so it lives here once: split at the *last* ``</think>``. A completion with no
closing tag has no answer segment at all; graders treat it as truncated rather than digging an
answer out of unfinished reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Split:
    reasoning: str
    answer: str
    closed: bool  # True when a </think> was found


def split_reasoning(text: str, reasoning_content: str | None = None) -> Split:
    """Split ``text`` at its last ``</think>``.

    ``reasoning_content`` is what APIs such as DeepSeek's return beside the content; when given,
    the content is the answer and the reasoning is already separate.
    """
    if reasoning_content is not None:
        return Split(reasoning_content.strip(), text.strip(), True)
    cut = text.rfind(THINK_CLOSE)
    if cut < 0:
        return Split(_strip_open(text).strip(), "", False)
    reasoning = _strip_open(text[:cut])
    return Split(reasoning.strip(), text[cut + len(THINK_CLOSE):].strip(), True)


def join_reasoning(reasoning: str, answer: str) -> str:
    """The training text of an assistant turn, in the R1 layout."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


def _strip_open(text: str) -> str:
    head = text.lstrip()
    return head[len(THINK_OPEN):] if head.startswith(THINK_OPEN) else text
