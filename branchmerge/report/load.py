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

from branchmerge.errors import UserError
from branchmerge.records import iter_jsonl
from branchmerge.report.stages import length_histogram

STAGE_KINDS = ("curation", "training", "merge")
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
    summary: dict[str, Any]
    config: dict[str, Any]
    samples: list[dict[str, Any]]

    @property
    def bench(self) -> str:
        return str(self.summary["bench"])

    @property
    def bench_version(self) -> str:
        return str(self.summary.get("bench_version") or "")

    @property
    def model(self) -> str:
        """The row label: the run's model name, else the folder above the bench folder."""
        return str(self.summary.get("model") or self.path.resolve().parent.name)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.summary["metrics"]

    @property
    def max_tokens(self) -> int | None:
        sources = (self.summary.get("sampling"), self.summary.get("tokens"), self.config.get("sampling"))
        for source in (s for s in sources if isinstance(s, dict)):
            value = source.get("max_tokens")
            if isinstance(value, (int, float)) and value > 0:
                return int(value)
        return None


@dataclass
class StageResult:
    """A curation, training or merge output: its stats, its card and (curation) sample lengths."""

    path: Path
    kind: str
    stats: dict[str, Any]
    card: str = ""
    lengths: list[int] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # training: metrics.jsonl log lines

    @property
    def name(self) -> str:
        return str(self.stats.get("name") or self.stats.get("domain") or self.path.name)


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


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_evaluation(path: Path, texts_per_verdict: int = 2) -> EvalResult:
    summary_path = path / "summary.json"
    summary = read_json(summary_path)
    if summary.get("kind") != "evaluation":
        raise UserError(f"{summary_path}: kind is {summary.get('kind')!r}, not 'evaluation'; {EXPECTED}")
    for key in ("bench", "metrics"):
        if key not in summary:
            raise UserError(f"{summary_path}: missing key {key!r} (is it from `branchmerge evaluate`?)")
    metrics = summary["metrics"]
    if not isinstance(metrics, dict) or not isinstance(metrics.get("pass@1"), (int, float)):
        raise UserError(f"{summary_path}: metrics['pass@1'] must be a number in 0..1")
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
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
    stats_path = path / "stats.json"
    stats = read_json(stats_path)
    kind = stats.get("kind")
    if kind not in STAGE_KINDS:
        raise UserError(f"{stats_path}: kind is {kind!r}; {EXPECTED}")
    card_path = path / "README.md"
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else ""
    # the Parquet export is read only when the stats carry no length histogram of their own
    lengths = _curation_lengths(path) if kind == "curation" and length_histogram(stats) is None else []
    history = _log_lines(path / "metrics.jsonl") if kind == "training" else []
    return StageResult(path=path, kind=kind, stats=stats, card=card, lengths=lengths, history=history)


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
