"""Published numbers that a report may show beside measured ones, always marked as published.

Source: TinyR1-32B-Preview (arXiv 2503.04872) Table 1 and Table 2, as transcribed in
reference/tinyr1.md §6. Pass@1 in percent; token counts are the paper's average output length
(chain of thought included), given there to one decimal in thousands. The DeepSeek-R1 and
R1-Distill pass@1 values are quoted by the TinyR1 paper from the DeepSeek-R1 paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from branchmerge.errors import choice_error


@dataclass(frozen=True)
class Published:
    model: str
    cells: dict[str, tuple[float, float | None]]  # bench -> (pass@1 %, mean output tokens)


TABLE1 = (
    Published(
        "DeepSeek-R1",
        {"aime24": (79.8, 9600), "livecodebench": (65.9, 10400), "gpqa_diamond": (71.5, 5300)},
    ),
    Published(
        "DeepSeek-R1-Distill-Qwen-32B",
        {"aime24": (72.6, 9600), "livecodebench": (57.2, 10100), "gpqa_diamond": (62.1, 5300)},
    ),
    Published(
        "DeepSeek-R1-Distill-Llama-70B",
        {"aime24": (70.0, None), "livecodebench": (57.5, None), "gpqa_diamond": (65.2, None)},
    ),
    Published(
        "TinyR1-32B-Preview",
        {"aime24": (78.1, 11800), "livecodebench": (61.6, 12400), "gpqa_diamond": (65.0, 8600)},
    ),
)

TABLE2 = (
    Published("Math expert", {"aime24": (73.1, None)}),
    Published("Coding expert", {"livecodebench": (63.4, None)}),
    Published("Science expert", {"gpqa_diamond": (64.5, None)}),
    Published(
        "Data mixture",
        {"aime24": (75.3, None), "livecodebench": (61.0, None), "gpqa_diamond": (65.7, None)},
    ),
    Published(
        "Merge (Math & Coding) & Science",
        {"aime24": (77.3, None), "livecodebench": (63.8, None), "gpqa_diamond": (64.0, None)},
    ),
    Published(
        "Merge (Math & Science) & Coding",
        {"aime24": (78.1, None), "livecodebench": (61.6, None), "gpqa_diamond": (65.0, None)},
    ),
)

SOURCES = {
    "paper": (TABLE1, "TinyR1 paper (arXiv 2503.04872) Table 1"),
    "paper-table2": (TABLE2, "TinyR1 paper (arXiv 2503.04872) Table 2 (experts, data mixture, merges)"),
}
NOTE = (
    "Published rows are quoted, not measured here: AIME 2024 with 16 samples, LiveCodeBench "
    "2024-08..2025-02 and GPQA-Diamond with 4, T=0.6, top-p 0.95, 32k max tokens; DeepSeek-R1 "
    "and R1-Distill pass@1 come from the DeepSeek-R1 paper, token lengths from the TinyR1 authors."
)


def published_rows(names: list[str]) -> list[tuple[Published, str]]:
    """The rows of the named reference sources, each with its citation."""
    rows: list[tuple[Published, str]] = []
    for name in names:
        if name not in SOURCES:
            raise choice_error("reference", name, list(SOURCES))
        table, citation = SOURCES[name]
        rows.extend((row, citation) for row in table)
    return rows
