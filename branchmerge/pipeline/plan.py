"""What a recipe will do, checked before anything runs: each stage's settings, inputs and API keys.

Each stage's options are built into the stage command's own config class (the same declarations
the command line is generated from), so a plan shows every setting as the command will see it,
with defaults filled in and old spellings mapped to current names. Each input a setting marks
``input=True`` must exist now, be written by an earlier stage, or be a Hub id. This is what
``run --dry-run`` prints (``--json`` for machines) and what ``run`` checks before its first stage.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.pipeline.recipe import Recipe, Stage

# Settings through which a stage writes (the paths later stages may read).
OUTPUT_SETTINGS = ("out", "out_dir", "html", "md")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_ROW_SUFFIXES = {".jsonl", ".json", ".csv", ".parquet", ".yaml", ".yml", ".jinja", ".txt", ".safetensors"}


@dataclass
class StagePlan:
    stage: Stage
    options: dict[str, Any]  # every setting of the command, canonical names, as the command will see them
    argv: list[str]
    inputs: list[dict[str, str]] = field(default_factory=list)  # {setting, path, found: exists|stage ID|hub}
    keys: list[str] = field(default_factory=list)  # environment variables holding API keys it needs
    hparams: dict[str, Any] | None = None  # training stages: the resolved hyper-parameters
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        s = self.stage
        entry = {"id": s.id, "command": s.command, "args": s.args, "options": self.options, "argv": self.argv,
                 "done": str(s.done), "status": "done" if s.done.exists() else "to run",
                 "inputs": self.inputs, "env": self.keys, "estimate": s.estimate}
        if s.description:
            entry["description"] = s.description
        if self.hparams is not None:
            entry["hparams"] = self.hparams
        if s.expected:
            entry["expected"] = s.expected
        if self.problems:
            entry["problems"] = self.problems
        return entry


def plan_recipe(recipe: Recipe, app: Any) -> list[StagePlan]:
    """One checked plan per stage; problems are collected, not raised, so all are shown at once.
    The recipe's ``env`` applies while planning, as it will while the stages run."""
    saved = {k: os.environ.get(k) for k in recipe.env}
    os.environ.update(recipe.env)
    try:
        return _plan(recipe, app)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _plan(recipe: Recipe, app: Any) -> list[StagePlan]:
    from branchmerge.pipeline.runner import resolve_command

    plans: list[StagePlan] = []
    written: list[tuple[Path, str]] = []  # (path, stage id) of everything earlier stages write
    for stage in recipe.stages:
        command, positional = resolve_command(app, stage)
        launcher = stage.launcher or ["branchmerge"]
        plan = StagePlan(stage, dict(stage.options), [*launcher, *stage.argv()])
        cls = getattr(command, "config_class", None)
        if cls is not None:
            config = _build(plan, cls, stage, positional, getattr(command, "fixed", {}))
            if config is not None:
                plan.options = _jsonable(settings.as_dict(config))
                _check_inputs(plan, cls, config, written)
                _extras(plan, config)
                written += [(Path(str(p)), stage.id) for p in _values(config, OUTPUT_SETTINGS)]
        written.append((stage.done, stage.id))
        plans.append(plan)
    return plans


def _build(plan: StagePlan, cls: type, stage: Stage, positional: list[str], fixed: dict[str, Any]) -> Any:
    items = {item.name: item for item in settings.declared(cls)}
    given = {}
    for key, value in settings.canonical(cls, stage.options).items():
        if key.startswith("no_") and key[3:] in items and isinstance(value, bool):
            key, value = key[3:], not value  # `no_x: true` is the recipe spelling of --no-x
        given[key] = value
    arguments = [item for item in settings.declared(cls) if item.spec.argument]
    words = [*positional, *stage.args]
    for item in arguments:
        if not words:
            break
        if item.kind == "list":
            given[item.name], words = words, []
        else:
            given[item.name], words = words[0], words[1:]
    try:
        return settings.build(cls, None, {**given, **fixed}, what=" ".join(stage.command))
    except UserError as exc:
        plan.problems.append(str(exc))
        return None


def _values(config: Any, names: tuple[str, ...] | list[str]) -> list[Any]:
    out = []
    for name in names:
        value = getattr(config, name, None)
        out += [v for v in (value if isinstance(value, list) else [value]) if v not in (None, "")]
    return out


def _check_inputs(plan: StagePlan, cls: type, config: Any, written: list[tuple[Path, str]]) -> None:
    for item in settings.declared(cls):
        if not item.spec.input:
            continue
        for value in _values(config, [item.name]):
            text = str(value)
            name, sep, rest = text.partition("=")  # evaluate --data NAME=PATH
            if sep and "/" not in name:
                text = rest
            for part in [p for p in text.split(",") if p]:
                plan.inputs.append({"setting": item.label, "path": part, "found": _find(part, written)})
    if plan.stage.done.exists():  # a finished stage is skipped: its inputs may be gone by now
        return
    for entry in plan.inputs:
        if entry["found"] == "missing":
            plan.problems.append(f"{entry['setting']} {entry['path']}: no such file or folder, and no earlier "
                                 "stage writes it")


def _find(path: str, written: list[tuple[Path, str]]) -> str:
    p = Path(path).expanduser()
    if p.exists():
        return "exists"
    resolved = p.resolve()
    for out, stage_id in written:
        o = out.expanduser().resolve()
        if o == resolved or o in resolved.parents or resolved in o.parents:
            return f"stage {stage_id}"
    if _HUB_ID.fullmatch(path) and p.suffix not in _ROW_SUFFIXES and not path.startswith((".", "/", "~")):
        return "hub"
    return "missing"


def _extras(plan: StagePlan, config: Any) -> None:
    """API keys the stage will need, and a training stage's resolved hyper-parameters."""
    name = plan.stage.command[0]
    try:
        if name == "curate":
            from branchmerge.curate.teachers import teacher_key

            key = teacher_key(config)
            plan.keys = [key] if key else []
        elif name == "evaluate":
            from branchmerge.engines import needed_key

            key = needed_key(config.engine, config.base_url, config.api_key_env)
            plan.keys = [key] if key else []
        elif name == "train":
            plan.hparams = _jsonable(dataclasses.replace(config).resolve().settings)
    except UserError as exc:
        plan.problems.append(str(exc))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def missing_keys(plans: list[StagePlan], pending_only: bool = True) -> list[str]:
    """API-key variables a (still to run) stage needs that the environment does not set."""
    keys = {k for p in plans for k in p.keys if not (pending_only and p.stage.done.exists())}
    return sorted(k for k in keys if not os.environ.get(k))


def as_json(recipe: Recipe, plans: list[StagePlan]) -> dict[str, Any]:
    return {"recipe": recipe.name, "path": str(recipe.path) if recipe.path else None, "vars": recipe.vars,
            "env": recipe.env, "stages": [p.to_dict() for p in plans],
            "needs_env": sorted({k for p in plans for k in p.keys}), "missing_env": missing_keys(plans),
            "problems": [f"stage {p.stage.id}: {msg}" for p in plans for msg in p.problems]}


def command_line(plan: StagePlan) -> str:
    launcher = plan.stage.launcher
    head = shlex.join(launcher) if launcher else "branchmerge"
    return f"{head} {shlex.join(plan.stage.argv())}"


def python_argv(stage: Stage, quiet: bool = False) -> list[str]:
    """The stage's process: its launcher, or this interpreter's ``branchmerge`` (with ``-q`` when quiet)."""
    if stage.launcher:
        return [*stage.launcher, *stage.argv()]
    return [sys.executable, "-m", "branchmerge", *(["-q"] if quiet else []), *stage.argv()]
