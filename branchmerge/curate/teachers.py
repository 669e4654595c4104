"""Teachers: the engine that answers the problems, and the sampling it uses.

``replay`` answers with the generations the source already holds (OpenR1-Math-220k,
OpenThoughts); a preset name (``deepseek-r1``) or an engine name (``hf``, ``openai``, ``vllm``
with ``--model``) generates new ones. Either way the completions reach the run store through
``on_complete`` as they finish, so the pipeline after the teacher is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from branchmerge.curate.adapters import Item
from branchmerge.curate.config import CurateConfig
from branchmerge.engines import ENGINES, SamplingParams, get_engine, load_preset, needed_key, preset_table
from branchmerge.errors import UserError, choice_error


@dataclass
class Teacher:
    engine: Any
    params: SamplingParams
    description: dict[str, Any]  # what the card and stats say about the teacher


def teacher_key(config: CurateConfig) -> str | None:
    """The environment variable holding the teacher's API key, or None when it needs none; known
    without building the engine, so a missing key stops the run before any download or request."""
    if config.teacher == "replay":
        return None
    if config.teacher in ENGINES:
        return needed_key(config.teacher, config.base_url, config.api_key_env)
    if config.teacher not in preset_table():
        raise choice_error("teacher", config.teacher, list(dict.fromkeys(["replay", *ENGINES, *preset_table()])))
    preset = load_preset(config.teacher, engine=config.engine, model=config.model, base_url=config.base_url,
                         api_key_env=config.api_key_env, **config.teacher_options)
    return needed_key(preset.engine, preset.options.get("base_url"), preset.options.get("api_key_env"))


def check_teacher_key(config: CurateConfig) -> None:
    key = teacher_key(config)
    if key and not os.environ.get(key):
        raise UserError(f"--teacher {config.teacher} needs an API key: set the environment variable {key} "
                        "(or name another variable with --api-key-env, or point --base-url at a local server)")


def build_teacher(config: CurateConfig, items: list[Item]) -> Teacher:
    if config.teacher == "replay":
        generations = {it.problem["id"]: it.replays for it in items if it.problem}
        finish = {it.problem["id"]: it.finish_reasons for it in items if it.problem}
        model = f"replay:{config.source}"
        engine = get_engine("replay", model=model, generations=generations, finish_reasons=finish)
        description = {"name": "replay", "engine": "replay", "model": model,
                       "note": "generations replayed from the source dataset; sampling as the source made them"}
        return Teacher(engine, SamplingParams(n=1), description)
    if config.teacher in ENGINES:
        if not config.model:
            raise UserError(f"--teacher {config.teacher} needs --model (a path, Hub id or served model name)")
        options = dict(config.teacher_options)
        if config.base_url:
            options["base_url"] = config.base_url
        if config.api_key_env and config.teacher == "openai":
            options["api_key_env"] = config.api_key_env
        engine_name, model, sampling = config.teacher, config.model, {}
    else:
        if config.teacher not in preset_table():
            raise choice_error("teacher", config.teacher, [*ENGINES, *preset_table()])
        preset = load_preset(config.teacher, engine=config.engine, model=config.model, base_url=config.base_url,
                             api_key_env=config.api_key_env, **config.teacher_options)
        engine_name, model, options, sampling = preset.engine, preset.model, preset.options, preset.sampling
    for key, value in (("temperature", config.temperature), ("top_p", config.top_p),
                       ("max_tokens", config.max_new_tokens)):
        if value is not None:
            sampling[key] = value
    try:
        params = SamplingParams(n=config.n_samples, seed=config.seed, **sampling)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad sampling settings for teacher {config.teacher}: {exc}") from None
    engine = get_engine(engine_name, model=model, **options)
    safe = {k: v for k, v in options.items() if "key" not in k.lower()}
    description = {"name": config.teacher, "engine": engine_name, "model": model, "options": safe}
    return Teacher(engine, params, description)
