"""The files stages meet through, each one typed class that writes it and reads it.

A stage never imports another stage: curation leaves ``stats.json`` (``CurationStats``), training
``stats.json`` (``TrainingStats``), a merge ``stats.json`` (``MergeStats``), evaluation
``summary.json`` and ``config.json`` (``EvaluationSummary``, ``EvaluationConfig``); the report and
the cards read them through the same classes. Each file carries ``kind`` and ``schema_version``.

Reading never guesses: a file of another kind, of a newer schema, or with a missing or mistyped
field fails with one line that names the file and the field. Fields a newer writer added are kept
(``extra="allow"``), so an older reader passes them through. Paths inside a run folder are stored
relative to the file that records them, so a copied or moved run folder still resolves them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from branchmerge.atomic import write_json
from branchmerge.errors import UserError


class Part(BaseModel):
    """A nested object of a contract: typed fields, unknown ones kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class Contract(Part):
    KIND: ClassVar[str]
    FILE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    kind: str = ""
    schema_version: int = 1

    def model_post_init(self, context: Any) -> None:
        self.kind = self.KIND

    @classmethod
    def read(cls, path: str | Path) -> Any:
        """Load ``path`` (a file, or the folder holding ``FILE``); any problem is one ``UserError`` line."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILE
        return cls.parse(_load_json(path, f"the {cls.KIND} {cls.FILE} written by branchmerge"), path)

    @classmethod
    def parse(cls, data: Any, where: str | Path) -> Any:
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != cls.KIND:
            raise UserError(f"{where}: kind is {data.get('kind')!r}, not {cls.KIND!r}")
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > cls.VERSION:
            raise UserError(f"{where}: schema_version {version!r} is newer than this branchmerge reads "
                            f"({cls.VERSION}); upgrade branchmerge")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(top level)"
            if first["type"] == "missing":
                raise UserError(f"{where}: missing key {field!r}") from None
            raise UserError(f"{where}: key {field!r}: {first['msg']}") from None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def write(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (a file, or the folder that gets ``FILE``)."""
        path = Path(path)
        if path.is_dir():
            path = path / self.FILE
        write_json(path, self.dump())
        return path


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (expected {what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc})") from None


def relative_to(path: str | Path, folder: str | Path) -> str:
    """``path`` as stored in a file inside ``folder``: ``./`` or ``../``-relative when it is local, so
    the run folder can move; a Hub id or served model name (nothing on disk) is kept as given."""
    if not Path(path).exists():
        return str(path)
    rel = os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    return rel if rel.startswith("..") else f"./{rel}"


def resolve_from(stored: str, folder: str | Path) -> Path | str:
    """The inverse of ``relative_to`` for a file read from ``folder``; absolute paths (older files) and
    Hub ids pass through."""
    if stored.startswith(("./", "../")):
        return Path(os.path.normpath(Path(folder).resolve() / stored))
    return Path(stored) if Path(stored).is_absolute() else stored


# -- curation --------------------------------------------------------------------------------------


class FunnelStage(Part):
    stage: str
    unit: str
    n_in: int = Field(alias="in")
    n_out: int = Field(alias="out")
    dropped: int
    reasons: dict[str, int] = {}


class SourceInfo(Part):
    name: str
    kind: str
    adapter: str
    columns: list[str] = []
    split: str | None = None
    subset: str | None = None
    revision: str | None = None
    where: dict[str, Any] = {}
    map: dict[str, Any] = {}


class CurationStats(Contract):
    KIND = "curation"
    FILE = "stats.json"

    domain: str
    rows: int
    problems: int
    source: SourceInfo
    teacher: dict[str, Any]
    sampling: dict[str, Any] | None = None
    funnel: list[FunnelStage]
    rejected: int = 0
    token_lengths: dict[str, Any] = {}
    selection: dict[str, Any] = {}
    warnings: list[str] = []
    timings_s: dict[str, float] = {}
    config: dict[str, Any] = {}
    teacher_tokens: dict[str, Any] | None = None
    source_labels: dict[str, int] | None = None
    dedup: dict[str, Any] | None = None
    decontamination: dict[str, Any] | None = None
    length_tokenizer: dict[str, Any] | None = None

    def reasons(self) -> list[tuple[str, int]]:
        """(stage: reason, rows) over the whole funnel, largest first."""
        found = [(f"{s.stage}: {reason}", n) for s in self.funnel for reason, n in s.reasons.items()]
        return sorted(found, key=lambda kv: -kv[1])


# -- training --------------------------------------------------------------------------------------


class TrainingStats(Contract):
    KIND = "training"
    FILE = "stats.json"

    name: str
    domain: str
    base_model: str
    data: dict[str, Any]
    hparams: str = Field(validation_alias=AliasChoices("hparams", "recipe"))
    settings: dict[str, Any]
    resolved: dict[str, Any] = {}
    examples: dict[str, Any]
    steps: int
    epochs: float
    tokens_seen: int
    first_loss: float | None = None
    final_loss: float | None = None
    train_loss: float | None = None
    wall_time_s: float
    train_time_s: float
    resumed_from_step: int | None = None
    hardware: dict[str, Any] = {}
    command: str = ""


# -- merge -----------------------------------------------------------------------------------------


class MergeInput(Part):
    ref: str
    path: str  # relative to the merge output folder when local
    role: str
    sha256: str
    files: dict[str, str] = {}


class MergeStats(Contract):
    KIND = "merge"
    FILE = "stats.json"

    method: str
    mode: str
    seed: int
    device: str
    threads: int = Field(1, validation_alias=AliasChoices("threads", "workers"))
    config: dict[str, Any]
    dtype: str | None = None
    out_dtype: str | None = None
    inputs: list[MergeInput]
    tensors: int
    parameters: int
    shards: list[str]
    time_s: float
    peak_memory: dict[str, Any] = {}
    input_files_hashed: int | None = None  # this run; the other input files' sha256 came from the cache
    fast_mode_deviation: str | None = None
    fraction_from_right: dict[str, float] | None = None
    fraction_from_right_overall: float | None = None
    slerp_linear_fallback: list[str] | None = None


# -- evaluation ------------------------------------------------------------------------------------


class EvaluationSummary(Contract):
    KIND = "evaluation"
    FILE = "summary.json"

    bench: str
    bench_version: str | None = None
    domain: str | None = None
    model: str | None = None
    model_path: str | None = None  # relative to the bench folder when local
    n: int | None = None
    num_problems: int | None = None
    num_samples: int | None = None
    metrics: dict[str, Any]
    tokens: dict[str, Any] = {}
    per_problem: list[dict[str, Any]] = []
    sampling: dict[str, Any] | None = None
    created: str | None = None

    @field_validator("metrics")
    @classmethod
    def _pass_at_1(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        value = metrics.get("pass@1")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError("metrics['pass@1'] must be a number in 0..1")
        return metrics


class EvaluationConfig(Contract):
    KIND = "evaluation-config"
    FILE = "config.json"

    bench: str
    bench_version: str | None = None
    dataset: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    template_hash: str | None = None
    model: str | None = None
    model_path: str | None = None
    model_fingerprint: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    engine_options: dict[str, Any] = {}
    chat_template_hash: str | None = None
    think_prefix: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    git_commit: str | None = None
    created: str | None = None
    split_method: str | None = None
    selection: dict[str, Any] | None = None
    grader: dict[str, Any] | None = None
    rescored: str | None = None


STAGE_STATS: dict[str, type[Contract]] = {c.KIND: c for c in (CurationStats, TrainingStats, MergeStats)}


def read_stage_stats(path: str | Path) -> Contract:
    """A curation, training or merge ``stats.json``, through the class its ``kind`` names."""
    path = Path(path)
    data = _load_json(path, "the stats.json of a curation, training or merge output")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("kind") not in STAGE_STATS:
        raise UserError(f"{path}: kind is {data.get('kind')!r}; expected one of {', '.join(STAGE_STATS)}")
    return STAGE_STATS[data["kind"]].parse(data, path)
