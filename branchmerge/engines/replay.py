"""Replay: a "teacher" whose generations already exist (OpenR1-Math-220k, OpenThoughts).

TinyR1 took its math and code data this way. The replay engine answers each request with the
stored texts for its id, so replayed data flows through exactly the same pipeline as generated
data. Token counts are unknown (None) unless the caller supplies them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams


class ReplayEngine:
    name = "replay"

    def __init__(self, generations: Mapping[str, Sequence[str]], model: str = "replay",
                 finish_reasons: Mapping[str, Sequence[str]] | None = None) -> None:
        self.model = model
        self.generations = generations
        self.finish_reasons = finish_reasons or {}

    def info(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model}

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        """Every stored generation of each request (``params.n`` is ignored: the data decides)."""
        results = Delivered(on_complete)
        for request in requests:
            texts = self.generations.get(request.id, ())
            reasons = self.finish_reasons.get(request.id, ())
            for s, text in enumerate(texts):
                if (request.id, s) in skip:
                    continue
                finish = reasons[s] if s < len(reasons) and reasons[s] else "stop"
                results.add(Completion.build(request.id, s, text, finish, None, None, model=self.model))
        return results
