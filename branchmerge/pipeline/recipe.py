"""Pipeline recipes: a YAML list of stages, each one ``branchmerge`` command with its options.

A recipe is data. ``${name}`` placeholders are filled from ``vars`` (overridable from the command
line). Each stage names the file whose existence means it is finished (``done``), so an
interrupted recipe resumes by skipping finished stages; and an ``estimate`` (tokens, GPU hours) so
that ``--dry-run`` can price the run before anything starts.

```yaml
name: demo
vars: {out: runs/demo}
env: {SOME_VAR: "${out}/x"}
stages:
  - id: curate-math
    command: [curate, math]
    options: {teacher: toy-teacher, source: "${out}/inputs/math_train.jsonl", out: "${out}/curated/math"}
    done: "${out}/curated/math/stats.json"
    estimate: {tokens: 2.0e4, gpu_hours: 0}
```
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError, did_you_mean
from branchmerge.settings import check_keys, read_yaml

STAGE_KEYS = {"id", "command", "args", "options", "done", "estimate", "expected", "launcher", "description"}
RECIPE_KEYS = {"name", "description", "vars", "env", "stages", "notes"}


@dataclass
class Stage:
    id: str
    command: list[str]
    args: list[str]
    options: dict[str, Any]
    done: Path
    estimate: dict[str, float] = field(default_factory=dict)
    launcher: list[str] | None = None
    description: str = ""
    expected: dict[str, Any] = field(default_factory=dict)  # published sizes, for planned data cards

    def argv(self) -> list[str]:
        """The command line after ``branchmerge``: command words, positional args, then options."""
        argv = [*self.command, *self.args]
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):  # every boolean setting has a --no- form
                argv.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, list):
                for item in value:
                    argv += [flag, str(item)]
            elif value is not None:
                argv += [flag, str(value)]
        return argv


@dataclass
class Recipe:
    name: str
    description: str
    vars: dict[str, str]
    env: dict[str, str]
    stages: list[Stage]
    path: Path | None = None


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped in ``branchmerge/recipes``."""
    folder = resources.files("branchmerge.recipes")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_recipe(name: str) -> Path:
    """Path of a recipe shipped in ``branchmerge/recipes`` (``tinyr1``, ``demo``)."""
    if name not in builtin_recipes():
        raise UserError(f"no built-in recipe {name!r}{did_you_mean(name, builtin_recipes())}; built-in: "
                        f"{', '.join(builtin_recipes())}")
    return Path(str(resources.files("branchmerge.recipes").joinpath(f"{name}.yaml")))


def find_recipe(name: str | Path) -> Path:
    """A YAML path when the argument names one (``.yaml``/``.yml``), else a built-in recipe by name; a
    local folder that happens to share a built-in's name never shadows it."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    if str(name) in builtin_recipes():
        return builtin_recipe(str(name))
    if path.is_file():
        return path
    raise UserError(f"recipe {str(name)!r}: not a built-in recipe ({', '.join(builtin_recipes())}) and not a "
                    f"YAML file{did_you_mean(str(name), builtin_recipes())}")


def load_recipe(path: str | Path, overrides: dict[str, str] | None = None) -> Recipe:
    path = find_recipe(path)
    raw = read_yaml(path, "pipeline recipe")
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise UserError(f"{path}: a recipe is a mapping with a non-empty 'stages' list")
    check_keys(raw, RECIPE_KEYS, str(path))
    variables = {k: str(v) for k, v in (raw.get("vars") or {}).items()}
    for key, value in (overrides or {}).items():
        if key not in variables:
            raise UserError(f"{path}: --set {key}: the recipe has no variable {key!r}; it has {', '.join(variables)}")
        variables[key] = value
    variables = _resolve_vars(variables, path)

    def fill(value: Any, where: str) -> Any:
        if isinstance(value, str):
            try:
                return string.Template(value).substitute(variables)
            except (KeyError, ValueError) as exc:
                raise UserError(f"{path}: {where}: unknown or malformed variable {exc}") from None
        if isinstance(value, list):
            return [fill(v, where) for v in value]
        if isinstance(value, dict):
            return {k: fill(v, where) for k, v in value.items()}
        return value

    stages, seen = [], set()
    for i, item in enumerate(raw["stages"]):
        where = f"stage {i + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{path}: {where} is not a mapping")
        where = f"stage {item.get('id', i + 1)!s}"
        check_keys(item, STAGE_KEYS, f"{path}: {where}")
        for key in ("id", "command", "done"):
            if key not in item:
                raise UserError(f"{path}: {where}: missing {key!r}")
        if item["id"] in seen:
            raise UserError(f"{path}: stage id {item['id']!r} appears twice")
        seen.add(item["id"])
        command = item["command"]
        stages.append(
            Stage(
                id=str(item["id"]),
                command=[command] if isinstance(command, str) else [str(c) for c in command],
                args=[str(a) for a in fill(item.get("args") or [], where)],
                options=fill(dict(item.get("options") or {}), where),
                done=Path(fill(item["done"], where)),
                estimate={k: float(v) for k, v in (item.get("estimate") or {}).items()},
                launcher=fill(item.get("launcher"), where),
                description=str(item.get("description", "")),
                expected=dict(item.get("expected") or {}),
            )
        )
    env = {k: str(fill(v, "env")) for k, v in (raw.get("env") or {}).items()}
    return Recipe(str(raw.get("name", path.stem)), str(raw.get("description", "")), variables, env, stages, path)


def _resolve_vars(variables: dict[str, str], path: Path) -> dict[str, str]:
    """Variables may refer to earlier ones (``${out}/curated``)."""
    resolved: dict[str, str] = {}
    for key, value in variables.items():
        try:
            resolved[key] = string.Template(value).substitute(resolved)
        except (KeyError, ValueError) as exc:
            raise UserError(f"{path}: variable {key!r} refers to an unknown or later variable {exc}") from None
    return resolved
