"""Text generation back-ends behind one interface (see ``base.Engine``).

``get_engine`` builds one by name; ``load_preset`` resolves a teacher preset (``deepseek-r1``)
into an engine name, model and options, optionally switched to another engine or server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from branchmerge.engines.base import Completion, Engine, Request, SamplingParams
from branchmerge.errors import UserError, choice_error
from branchmerge.settings import read_yaml

ENGINES = ("hf", "openai", "vllm", "replay", "toy")

__all__ = ["Completion", "Engine", "Request", "SamplingParams", "ENGINES", "Preset", "get_engine", "load_preset",
           "needed_key", "preset_table"]


def get_engine(name: str, model: str, **options: Any) -> Engine:
    """Build the engine ``name`` for ``model`` (a path, a Hub id or a served model name)."""
    if name == "hf":
        from branchmerge.engines.hf import HFEngine

        return HFEngine(model, **options)
    if name == "openai":
        from branchmerge.engines.openai import OpenAIEngine

        return OpenAIEngine(model, **options)
    if name == "vllm":
        from branchmerge.engines.vllm import VLLMEngine

        return VLLMEngine(model, **options)
    if name == "replay":
        from branchmerge.engines.replay import ReplayEngine

        return ReplayEngine(model=model, **options)
    if name == "toy":
        from branchmerge.engines.toy import ToyTeacher

        return ToyTeacher.from_files(model=model, **options)
    raise choice_error("engine", name, ENGINES)


@dataclass
class Preset:
    name: str
    engine: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Engine:
        return get_engine(self.engine, self.model, **self.options)


def preset_table(extra_files: list[str | Path] | None = None) -> dict[str, dict[str, Any]]:
    import yaml

    table = yaml.safe_load(resources.files("branchmerge.engines").joinpath("presets.yaml").read_text())
    files = [p for p in os.environ.get("BRANCHMERGE_PRESETS", "").split(os.pathsep) if p]
    for path in [*files, *(extra_files or [])]:
        data = read_yaml(path, "engine presets") or {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping of preset names to presets")
        for spec in data.values():
            if isinstance(spec, dict) and isinstance(spec.get("options"), dict):
                spec["options"] = _local_paths(spec["options"], Path(path).parent)
        table.update(data)
    return table


def _local_paths(value: Any, folder: Path) -> Any:
    """``./x`` and ``../x`` in a presets file are relative to that file, so a copied run folder still works."""
    if isinstance(value, str) and value.startswith(("./", "../")):
        return str((folder / value).resolve())
    if isinstance(value, list):
        return [_local_paths(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: _local_paths(v, folder) for k, v in value.items()}
    return value


def needed_key(engine: str, base_url: str | None, api_key_env: str | None) -> str | None:
    """The environment variable an engine will need for its API key, or None (a local engine, or a
    server on loopback, which needs none)."""
    from branchmerge.engines.openai import is_loopback

    if engine != "openai" or (base_url and is_loopback(base_url)):
        return None
    return api_key_env or "OPENAI_API_KEY"


def load_preset(
    name: str,
    engine: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    extra_files: list[str | Path] | None = None,
    api_key_env: str | None = None,
    **options: Any,
) -> Preset:
    """Resolve preset ``name``; ``engine``/``model``/``base_url``/``options`` override it.

    ``engine="vllm"`` switches to the preset's vllm section (e.g. DeepSeek-R1 on your own GPUs);
    ``base_url`` points the openai engine at any compatible server.
    """
    table = preset_table(extra_files)
    if name not in table:
        raise choice_error("preset", name, list(table))
    spec = table[name]
    chosen = engine or spec["engine"]
    if chosen not in ENGINES:
        raise choice_error("engine", chosen, ENGINES)
    section = spec if chosen == spec["engine"] else spec.get(chosen, {})
    opts: dict[str, Any] = dict(section.get("options", {}))
    if chosen == "openai":
        opts.setdefault("base_url", spec.get("base_url", "https://api.openai.com/v1"))
        opts.setdefault("api_key_env", spec.get("api_key_env", "OPENAI_API_KEY"))
        if base_url:
            opts["base_url"] = base_url
        if api_key_env:
            opts["api_key_env"] = api_key_env
    opts.update(options)
    resolved_model = model or section.get("model") or spec["model"]
    return Preset(name, chosen, resolved_model, opts, dict(spec.get("sampling", {})))
