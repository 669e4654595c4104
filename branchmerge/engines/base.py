"""The one generation interface used by curation (teachers) and evaluation (students).

An engine turns ``Request``s into ``Completion``s: ``n`` samples per request, each with the text,
the reasoning split off at the last ``</think>`` (or the API's ``reasoning_content``), the finish
reason and token counts reported by the engine itself. ``on_complete`` is called as each
completion finishes, so callers can store it at once and a crash never pays for it twice;
``skip`` holds (request id, sample index) pairs already done in an earlier run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from branchmerge.reasoning import split_reasoning


@dataclass
class Request:
    """One prompt. ``messages`` is a chat; ``prompt`` a raw string sent without chat template."""

    id: str
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.id!r}: give exactly one of messages or prompt")


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = -1
    max_tokens: int = 32768
    seed: int = 0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    request_id: str
    sample_idx: int
    text: str
    reasoning: str
    answer: str
    finish_reason: str  # "stop" | "length" | "error"
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str = ""
    error: str | None = None

    @classmethod
    def build(
        cls,
        request_id: str,
        sample_idx: int,
        text: str,
        finish_reason: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        model: str = "",
        reasoning_content: str | None = None,
        error: str | None = None,
    ) -> Completion:
        split = split_reasoning(text, reasoning_content)
        if reasoning_content is not None:
            text = f"<think>\n{reasoning_content}\n</think>\n\n{text}"
        return cls(
            request_id, sample_idx, text, split.reasoning, split.answer, finish_reason,
            prompt_tokens, completion_tokens, model, error,
        )

    def to_row(self) -> dict[str, Any]:
        """The generation-row fields of DESIGN.md that come from the engine."""
        return {
            "model": self.model,
            "sample_idx": self.sample_idx,
            "completion": self.text,
            "reasoning": self.reasoning,
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


OnComplete = Callable[[Completion], None]


class Delivered(list):
    """The completions of one ``generate`` call, in the order they finished.

    ``add`` hands each completion to ``on_complete`` the moment it exists, so the caller stores it
    before anything else can fail: every engine delivers through this one loop, and none keeps
    finished work only in memory.
    """

    def __init__(self, on_complete: OnComplete | None = None) -> None:
        super().__init__()
        self.on_complete = on_complete

    def add(self, completion: Completion) -> None:
        self.append(completion)
        if self.on_complete is not None:
            self.on_complete(completion)


def pending(
    requests: Sequence[Request], params: SamplingParams, skip: Collection[tuple[str, int]]
) -> list[tuple[Request, int]]:
    """The (request, sample index) pairs still to generate: ``params.n`` per request, minus ``skip``.

    The one resume rule every engine follows, so a resumed run asks for exactly the missing samples.
    """
    return [(r, s) for r in requests for s in range(params.n) if (r.id, s) not in skip]


class Engine(Protocol):
    name: str
    model: str

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        """Generate ``params.n`` samples per request, except the (id, sample_idx) pairs in ``skip``."""
        ...

    def info(self) -> dict[str, Any]:
        """Provenance: engine name, versions, model path or served name."""
        ...
