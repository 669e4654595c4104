"""The one configuration object of a curation run.

The CLI, a ``--config FILE.yaml`` and the pipeline/demo code all fill the same dataclass, so every
flag can live in the file: values from the file override the defaults, explicit flags override
the file. The resolved config is written into ``stats.json`` so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError, choice_error
from branchmerge.records import DOMAINS

SELECTIONS = ("first", "shortest", "all")
# Benchmarks checked for contamination when --decontam is not given (names of evaluate's registry).
DEFAULT_DECONTAM = {
    "math": ["aime24", "aime25", "amc23", "math500"],
    "code": ["livecodebench"],
    "science": ["gpqa_diamond"],
}


@dataclass
class CurateConfig:
    """Everything a curation run needs; see ``branchmerge curate math --help`` for each field."""

    domain: str
    source: str
    out: str
    teacher: str = "replay"
    # source
    split: str = "train"
    subset: str | None = None
    revision: str | None = None
    schema: str | None = None  # force an adapter instead of recognising it from the columns
    map: dict[str, str] = field(default_factory=dict)
    where: dict[str, list[Any]] = field(default_factory=dict)  # keep source rows whose column is in the list
    prompt_template: str | None = None  # "{problem}" placeholder; default per domain
    limit: int | None = None
    # teacher
    engine: str | None = None  # switch a preset to another engine (e.g. vllm)
    model: str | None = None
    base_url: str | None = None
    teacher_options: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    # verification and filters
    workers: int | None = None
    require_correct: bool = True
    max_repeat_lines: int = 20
    min_tail_compression: float = 0.08
    max_tokens_length: int | None = None
    student_tokenizer: str | None = None
    near_dup_threshold: float = 0.8
    minhash_perms: int = 128
    shingle_words: int = 5
    decontam: list[str] | None = None  # None: the domain's default benchmarks; [] disables
    decontam_ngram: int = 8
    # selection and output
    select: str = "all"
    max_per_problem: int | None = None
    resume: bool = False
    push_to_hub: str | None = None
    license: str | None = None

    def __post_init__(self) -> None:
        self.where = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in (self.where or {}).items()}
        if self.domain not in DOMAINS:
            raise choice_error("domain", self.domain, DOMAINS)
        if self.select not in SELECTIONS:
            raise choice_error("selection", self.select, SELECTIONS)
        if self.n_samples < 1:
            raise UserError(f"--n-samples must be >= 1, got {self.n_samples}")
        if self.max_per_problem is not None and self.max_per_problem < 1:
            raise UserError(f"--max-per-problem must be >= 1, got {self.max_per_problem}")
        if not 0 < self.near_dup_threshold <= 1:
            raise UserError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.decontam_ngram < 3:
            raise UserError(f"decontam_ngram must be >= 3, got {self.decontam_ngram}")

    @property
    def decontam_benchmarks(self) -> list[str]:
        return list(DEFAULT_DECONTAM[self.domain] if self.decontam is None else self.decontam)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def build(cls, file: str | Path | None = None, **given: Any) -> CurateConfig:
        """Defaults, then ``file`` (YAML), then ``given`` values that are not None."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update(read_config_file(file))
        values.update({k: v for k, v in given.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            where = f"in {file}" if file else "given"
            raise UserError(f"unknown curation setting(s) {', '.join(unknown)} {where}; valid: {', '.join(sorted(names))}")
        missing = [n for n in ("domain", "source", "out") if not values.get(n)]
        if missing:
            raise UserError(f"missing curation setting(s): {', '.join(missing)} (give them as flags or in --config)")
        return cls(**values)


def read_config_file(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path}: expected a mapping of settings, got {type(data).__name__}")
    # YAML keys may use the flag spelling (max-per-problem) or the field name (max_per_problem).
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    """``["prompt=question", "answer=solution"]`` (or comma-joined) -> ``{"prompt": "question", ...}``."""
    pairs: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise UserError(f"{flag} expects key=value pairs, got {part!r}")
            pairs[key.strip()] = value.strip()
    return pairs
