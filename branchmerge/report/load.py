"""Find and read the result directories a report is built from, by their ``kind``.

Every stage writes a ``summary.json`` (evaluation) or ``stats.json`` (curation, training, merge)
whose top-level ``kind`` says what it is; nothing is guessed from file names. A directory given
to ``report`` may also be the parent of several evaluation bench directories
(``evaluate --out DIR`` writes ``DIR/<bench>/summary.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge.contracts import (
    Contract,
    CurationStats,
    EvaluationConfig,
    EvaluationSummary,
    read_stage_stats,
    resolve_from,
)
from branchmerge.errors import UserError
from branchmerge.records import iter_jsonl
from branchmerge.report.stages import length_histogram

SEARCH_DEPTH = 3  # runs/ -> eval/ -> <model>/ -> <bench>/
EXPECTED = (
    "expected an evaluation result (summary.json with kind 'evaluation', as written by "
    "`branchmerge evaluate --out DIR` in DIR/<bench>/), or a stage output (stats.json with kind "
    "'curation', 'training' or 'merge'), or a folder holding such directories"
)


@dataclass
class EvalResult:
    """One model on one benchmark: the summary, its provenance and the graded samples."""

    path: Path
    summary: EvaluationSummary
    config: EvaluationConfig | None
    samples: list[dict[str, Any]]

    @property
    def bench(self) -> str:
        return self.summary.bench

    @property
    def bench_version(self) -> str:
        return self.summary.bench_version or ""

    @property
    def model(self) -> str:
        """The row label: the run's model name, else the folder above the bench folder."""
        return self.summary.model or self.path.resolve().parent.name

    @property
    def model_path(self) -> Path | str | None:
        """The evaluated model, resolved from this folder (run folders can be moved or copied)."""
        stored = self.summary.model_path
        return None if stored is None else resolve_from(stored, self.path)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.summary.metrics

    @property
    def max_tokens(self) -> int | None:
        value = (self.summary.sampling or {}).get("max_tokens", self.summary.tokens.get("max_tokens"))
        return int(value) if isinstance(value, (int, float)) and value > 0 else None


@dataclass
class StageResult:
    """A curation, training or merge output: its stats, its card and (curation) sample lengths."""

    path: Path
    stats: Contract  # CurationStats | TrainingStats | MergeStats
    card: str = ""
    lengths: list[int] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # training: metrics.jsonl log lines

    @property
    def kind(self) -> str:
        return self.stats.kind

    @property
    def name(self) -> str:
        return str(getattr(self.stats, "name", None) or getattr(self.stats, "domain", None) or self.path.name)


@dataclass
class Inputs:
    evaluations: list[EvalResult] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)


def load_dirs(paths: list[Path], texts_per_verdict: int = 2) -> Inputs:
    """Load every directory (in the order given) into evaluation and stage results.

    Of each problem's samples, only the ``texts_per_verdict`` lowest-index ones of each verdict keep
    their texts (all a sample viewer showing that many per model can pick from); the rest keep
    their numbers only, so memory follows what the report shows, not n x the trace length.
    """
    if not paths:
        raise UserError("no result directory given; " + EXPECTED)
    inputs = Inputs()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{path}: not a directory; {EXPECTED}")
        found = _discover(path, SEARCH_DEPTH)
        if not found:
            raise UserError(f"{path}: holds neither summary.json nor stats.json (searched {SEARCH_DEPTH} levels "
                            f"down); {EXPECTED}")
        for result_dir in found:
            if (result_dir / "summary.json").is_file():
                inputs.evaluations.append(load_evaluation(result_dir, texts_per_verdict))
            else:
                inputs.stages.append(load_stage(result_dir))
    _check_unique(inputs.evaluations)
    return inputs


def _discover(path: Path, depth: int) -> list[Path]:
    """``path`` if it is a result directory, else the result directories below it (sorted, ``depth`` levels).

    So ``report runs/`` finds runs/eval/<model>/<bench>, runs/curate/math, ... ; a result directory's own
    subfolders (data/, shards/, checkpoints/) are never searched.
    """
    if (path / "summary.json").is_file() or (path / "stats.json").is_file():
        return [path]
    if depth == 0:
        return []
    found: list[Path] = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found.extend(_discover(sub, depth - 1))
    return found


def load_evaluation(path: Path, texts_per_verdict: int = 2) -> EvalResult:
    summary = EvaluationSummary.read(path)
    config = EvaluationConfig.read(path) if (path / EvaluationConfig.FILE).is_file() else None
    samples = _read_samples(path / "samples.jsonl", texts_per_verdict)
    return EvalResult(path=path, summary=summary, config=config, samples=samples)


TEXT_FIELDS = ("prompt", "reasoning", "answer", "completion")


def _read_samples(path: Path, texts_per_verdict: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    kept: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (id, verdict) -> rows holding texts
    for lineno, row, why in iter_jsonl(path):
        if why is not None:
            raise UserError(f"{path}:{lineno}: {why}")
        if not isinstance(row, dict) or "id" not in row:
            raise UserError(f"{path}:{lineno}: expected a sample object with an 'id'")
        if row.get("reasoning") or row.get("answer"):
            row.pop("completion", None)  # the same text again, split
        holders = kept.setdefault((str(row["id"]), str(row.get("verdict"))), [])
        holders.append(row)
        holders.sort(key=lambda r: r.get("sample_idx", 0))
        for dropped in holders[texts_per_verdict:]:
            for name in TEXT_FIELDS:
                dropped.pop(name, None)
        del holders[texts_per_verdict:]
        rows.append(row)
    return rows


def load_stage(path: Path) -> StageResult:
    stats = read_stage_stats(path / "stats.json")
    card_path = path / "README.md"
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else ""
    # the Parquet export is read only when the stats carry no length histogram of their own
    curation = isinstance(stats, CurationStats)
    lengths = _curation_lengths(path) if curation and length_histogram(stats) is None else []
    history = _log_lines(path / "metrics.jsonl") if stats.kind == "training" else []
    return StageResult(path=path, stats=stats, card=card, lengths=lengths, history=history)


def _log_lines(path: Path) -> list[dict[str, Any]]:
    """Trainer log lines; a line torn by a crash (the file is append-only) is skipped, not fatal."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _curation_lengths(path: Path) -> list[int]:
    """Completion token counts of the kept rows, read from the Parquet export when present."""
    files = sorted((path / "data").glob("*.parquet"))
    if not files:
        return []
    import pyarrow.parquet as pq

    lengths: list[int] = []
    for file in files:
        try:
            if "completion_tokens" not in pq.read_schema(file).names:
                continue
            column = pq.read_table(file, columns=["completion_tokens"]).column(0).to_pylist()
        except OSError as exc:
            raise UserError(f"{file}: unreadable Parquet ({exc})") from None
        lengths.extend(int(v) for v in column if isinstance(v, (int, float)))
    return lengths


def _check_unique(results: list[EvalResult]) -> None:
    seen: dict[tuple[str, str, str], Path] = {}
    for result in results:
        key = (result.model, result.bench, result.bench_version)
        if key in seen:
            raise UserError(
                f"two results for model {result.model!r} on {result.bench} "
                f"(version {result.bench_version or 'unversioned'}): {seen[key]} and {result.path}; "
                "pass only one of them, or give the runs different model names"
            )
        seen[key] = result.path
