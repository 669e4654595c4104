"""The benchmark registry: benchmark specs and prompt templates kept as data (YAML).

The package ships ``registry.yaml``; a user YAML file of the same shape adds or overrides
benchmarks (``--bench my.yaml`` runs every benchmark it defines, ``--bench my.yaml:name`` one of
them). Keeping specs as data means a run's config.json can record the exact spec it used.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError, choice_error
from branchmerge.records import DOMAINS

BUILTIN = Path(__file__).with_name("registry.yaml")
LOADERS = ("math", "gpqa", "livecodebench", "rows")
SPEC_KEYS = {
    "description", "domain", "loader", "hub", "gated", "template", "n", "grader", "shuffle", "options",
    "fields",
}


@dataclass(frozen=True)
class BenchSpec:
    name: str
    domain: str
    loader: str
    template: dict[str, Any]
    template_name: str
    n: int = 1
    hub: dict[str, Any] = field(default_factory=dict)
    gated: bool = False
    grader: dict[str, Any] = field(default_factory=dict)
    shuffle: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    origin: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "domain": self.domain, "loader": self.loader, "hub": self.hub,
            "gated": self.gated, "template_name": self.template_name, "template": self.template,
            "n": self.n, "grader": self.grader, "shuffle": self.shuffle, "options": self.options,
            "fields": self.fields, "description": self.description, "origin": self.origin,
        }

    def template_hash(self) -> str:
        text = json.dumps(self.template, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UserError(f"{path}: cannot read benchmark file ({exc})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks", {}), dict):
        raise UserError(f"{path}: expected a mapping with a 'benchmarks:' section (see {BUILTIN.name})")
    return data


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Any]:
    return _read_yaml(BUILTIN)


def _build(name: str, raw: Any, templates: dict[str, Any], origin: str) -> BenchSpec:
    where = f"{origin}: benchmark {name!r}"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping of fields")
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise UserError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(SPEC_KEYS))}"
        )
    domain = raw.get("domain")
    if domain not in DOMAINS:
        raise UserError(f"{where}: domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    loader = raw.get("loader", "math" if domain == "math" else "rows")
    if loader not in LOADERS:
        raise UserError(f"{where}: loader must be one of {', '.join(LOADERS)}, got {loader!r}")
    template = raw.get("template", "r1_math")
    if isinstance(template, str):
        if template not in templates:
            raise choice_error(f"template in {where}", template, list(templates))
        template_name, template_body = template, templates[template]
    elif isinstance(template, dict) and ("user" in template or "raw" in template):
        template_name, template_body = "inline", template
    else:
        raise UserError(f"{where}: template must be a template name or a mapping with a 'user' (or 'raw') text")
    n = raw.get("n", 1)
    if not isinstance(n, int) or n < 1:
        raise UserError(f"{where}: n must be a positive integer, got {n!r}")
    return BenchSpec(
        name=name, domain=domain, loader=loader, template=copy.deepcopy(template_body),
        template_name=template_name, n=n, hub=dict(raw.get("hub") or {}), gated=bool(raw.get("gated")),
        grader={**(raw.get("grader") or {}), **(template_body.get("grader") or {})}, shuffle=bool(raw.get("shuffle")),
        options=dict(raw.get("options") or {}), fields=dict(raw.get("fields") or {}),
        description=str(raw.get("description", "")), origin=origin,
    )


def template_names() -> list[str]:
    return sorted(_builtin().get("templates") or {})


def with_template(spec: BenchSpec, name: str) -> BenchSpec:
    """``spec`` prompted with the registry template ``name``; the template's ``grader`` options (how
    the release that wrote it grades) replace the benchmark's."""
    templates = _builtin().get("templates") or {}
    if name not in templates:
        raise choice_error("template", name, list(templates))
    body = copy.deepcopy(templates[name])
    return dataclasses.replace(spec, template=body, template_name=name,
                               grader={**spec.grader, **(body.get("grader") or {})})


def _specs_in(data: dict[str, Any], origin: str, base_templates: dict[str, Any]) -> dict[str, BenchSpec]:
    templates = {**base_templates, **(data.get("templates") or {})}
    return {name: _build(name, raw, templates, origin) for name, raw in (data.get("benchmarks") or {}).items()}


def builtin_specs() -> dict[str, BenchSpec]:
    data = _builtin()
    return _specs_in(data, "builtin", data.get("templates") or {})


def user_specs(path: str | Path) -> dict[str, BenchSpec]:
    """Benchmarks defined in a user YAML file; its templates may use the built-in ones by name."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such benchmark file")
    specs = _specs_in(_read_yaml(path), str(path), _builtin().get("templates") or {})
    if not specs:
        raise UserError(f"{path}: defines no benchmarks")
    return specs


def is_file_ref(name: str) -> bool:
    return name.split(":", 1)[0].endswith((".yaml", ".yml"))


def resolve(name: str) -> list[BenchSpec]:
    """``aime24`` -> the built-in spec; ``file.yaml`` -> all its specs; ``file.yaml:x`` -> one."""
    if is_file_ref(name):
        path, _, which = name.partition(":")
        specs = user_specs(path)
        if which:
            if which not in specs:
                raise choice_error(f"benchmark in {path}", which, list(specs))
            return [specs[which]]
        return list(specs.values())
    specs = builtin_specs()
    if name not in specs:
        raise choice_error("benchmark", name, list(specs) + ["<file>.yaml[:name]"])
    return [specs[name]]


def get_spec(name: str) -> BenchSpec:
    specs = resolve(name)
    if len(specs) != 1:
        raise UserError(f"{name} defines {len(specs)} benchmarks; name one as {name}:<benchmark>")
    return specs[0]


def list_benchmarks() -> list[str]:
    """Names of the built-in benchmarks."""
    return sorted(builtin_specs())
