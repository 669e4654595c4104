"""Row filters after verification: format checks, runaway repetition, token length.

Each check returns a reason (a short stable name counted in the funnel) and a detail for the
rejected row, or None when the row passes.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from branchmerge.reasoning import THINK_CLOSE, THINK_OPEN, join_reasoning

TAIL_CHARS = 4096  # the window where runaway repetition shows
MIN_LINE_CHARS = 20  # shorter lines ("Wait,", "}") repeat legitimately
BOUND_SLACK = 8


def format_problem(row: dict[str, Any]) -> tuple[str, str] | None:
    """Exactly one closed think block, non-empty reasoning and answer, finished generation."""
    finish = row.get("finish_reason")
    if finish == "error":
        return "teacher_error", str((row.get("verdict_detail") or {}).get("error", "the teacher failed"))
    if finish == "length":
        return "truncated", "the teacher hit its token limit"
    text = row.get("completion") or ""
    closes, opens = text.count(THINK_CLOSE), text.count(THINK_OPEN)
    if closes != 1 or opens > 1:
        return "think_block", f"{opens} <think> and {closes} </think> tags; expected one closed block"
    if not (row.get("reasoning") or "").strip():
        return "empty_reasoning", "the think block is empty"
    if not (row.get("answer") or "").strip():
        return "empty_answer", "nothing after </think>"
    return None


def repetition(text: str, max_repeat_lines: int = 20, min_tail_compression: float = 0.08) -> str | None:
    """Why ``text`` looks like a runaway loop, or None.

    Two signals: one substantial line repeated ``max_repeat_lines`` times or more, or a tail that
    zlib compresses below ``min_tail_compression`` of its size (prose compresses to ~0.3-0.5; a
    loop over a few sentences to a few percent).
    """
    lines = Counter(line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_LINE_CHARS)
    if lines:
        line, count = lines.most_common(1)[0]
        if count >= max_repeat_lines:
            return f"line repeated {count} times: {line[:80]!r}"
    if len(text) >= TAIL_CHARS:
        tail = text[-TAIL_CHARS:].encode("utf-8")
        ratio = len(zlib.compress(tail, 1)) / len(tail)
        if ratio < min_tail_compression:
            return f"last {TAIL_CHARS} characters compress to {ratio:.3f} of their size"
    return None


def messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """The SFT chat of a kept row: user prompt; assistant ``<think>\\n…\\n</think>\\n\\n answer``."""
    return [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": join_reasoning(row.get("reasoning") or "", row.get("answer") or "")},
    ]


class TokenLength:
    """Token counts of whole training examples with the student's tokenizer, framed as ``train``
    encodes them (``branchmerge.chat``): the inference prompt, the assistant content less the
    generation prompt's pre-fill, and the turn end up to its stop token, under the chat template
    training will use. Rendering the whole chat instead would drop the reasoning under an
    R1-Distill template and count only prompt and answer."""

    def __init__(self, tokenizer_path: str, chat_template: str = "model") -> None:
        from transformers import AutoTokenizer

        from branchmerge.chat import ChatFormat, use_template
        from branchmerge.errors import UserError
        from branchmerge.network import check_hub

        if not Path(tokenizer_path).exists():
            check_hub()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        except Exception as exc:  # missing path, no network for a Hub id, broken files
            raise UserError(f"cannot load the student tokenizer {tokenizer_path!r}: {exc}") from None
        self.name = tokenizer_path
        stops = use_template(self.tokenizer, chat_template)
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat = ChatFormat.for_tokenizer(self.tokenizer, stops) if self.templated else None
        self._tails: dict[str, int] = {}

    def pieces(self, chat: list[dict[str, str]]) -> tuple[str, str, int]:
        """(prompt text, target text, ids after the target) of one example, as training encodes it."""
        if self.chat is None:
            return "", "\n\n".join(m["content"] for m in chat), 0
        parts = self.chat.split(chat)
        if parts is None:  # content without the template's pre-fill (training drops it): count it whole
            prompt, _, end_of_turn = self.chat.frame(chat[:-1])
            parts = (prompt, chat[-1]["content"], end_of_turn)
        prompt, target, end_of_turn = parts
        if end_of_turn not in self._tails:
            self._tails[end_of_turn] = len(self.chat.tail_ids(end_of_turn))
        return prompt, target, self._tails[end_of_turn]

    def count(self, chats: Sequence[list[dict[str, str]]]) -> list[int]:
        return self.count_pieces([self.pieces(c) for c in chats])

    def count_pieces(self, pieces: Sequence[tuple[str, str, int]]) -> list[int]:
        """Prompt and target tokenized apart, as training does, plus the turn end's ids."""
        prompts = self.count_texts([p for p, _, _ in pieces])
        targets = self.count_texts([t for _, t, _ in pieces])
        return [a + b + tail for a, b, (_, _, tail) in zip(prompts, targets, pieces, strict=True)]

    def count_texts(self, texts: Sequence[str], batch: int = 512) -> list[int]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        fast = getattr(backend, "encode_batch_fast", None)  # Rust batch encode without offsets
        counts: list[int] = []
        for start in range(0, len(texts), batch):
            chunk = list(texts[start : start + batch])
            if fast is not None:
                counts += [len(e.ids) for e in fast(chunk, add_special_tokens=False)]
            else:
                counts += [len(ids) for ids in self.tokenizer(chunk, add_special_tokens=False)["input_ids"]]
        return counts

    def within(self, pieces: tuple[str, str, int], limit: int) -> bool:
        """True when the example surely fits ``limit`` tokens without tokenizing it.

        Every token of a byte-level BPE (Qwen, Llama 3, DeepSeek) or a byte-fallback SentencePiece
        covers at least one byte, so a text of ``b`` UTF-8 bytes has at most ``b`` tokens (plus a
        SentencePiece dummy prefix per text, hence the slack). Only examples near or over the limit
        get tokenized.
        """
        prompt, target, tail = pieces
        return len(prompt.encode("utf-8")) + len(target.encode("utf-8")) + tail + BOUND_SLACK <= limit
