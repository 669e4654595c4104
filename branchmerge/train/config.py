"""The one configuration object of a training run, and the recipes it is filled from.

A recipe is a YAML file with a ``defaults`` section and one section per domain; each section is
a flat mapping of settings. A setting is either one of ours (``RECIPE_KEYS``) or any field of
TRL's ``SFTConfig``; ``--set key=value`` overrides either kind. Keeping one flat namespace means
the YAML, the command line and the stats file all spell a setting the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError, choice_error
from branchmerge.records import DOMAINS

# "mixture" trains one model on several domains at once: the paper's Data Mixture baseline, and the
# demo's shared backbone. It uses the recipe's defaults (plus a "mixture" section if the recipe has one).
TRAIN_DOMAINS = (*DOMAINS, "mixture")

BUILTIN_RECIPES = ("tinyr1", "demo")
OVERLONG = ("drop", "truncate")
ZERO3_CONFIG = Path(__file__).with_name("zero3.json")
RECIPES_DIR = Path(__file__).parents[1] / "recipes"

# Settings that are ours, not SFTConfig fields, with their defaults.
RECIPE_KEYS: dict[str, Any] = {
    # examples longer than max_length: dropped (the paper's 16k filter) or cut at max_length
    "overlong": "drop",
    # global batch = per-device batch x processes x accumulation; accumulation is derived from it
    "global_batch_size": None,
    # weights dtype at load: auto = bfloat16 under DeepSpeed (it keeps fp32 master weights), else float32
    "dtype": "auto",
    # auto = flash_attention_2 when flash-attn is installed on a GPU machine, else sdpa
    "attn_implementation": "auto",
}
# SFTConfig fields the training stage sets itself.
RESERVED = ("output_dir", "resume_from_checkpoint", "do_train", "assistant_only_loss", "completion_only_loss")
# Always applied before the recipe: no experiment trackers unless asked, token counting on.
BASE_SETTINGS: dict[str, Any] = {
    "report_to": "none",
    "include_num_input_tokens_seen": "non_padding",
    "save_strategy": "steps",
}


def sft_fields() -> dict[str, dataclasses.Field]:
    from trl import SFTConfig

    return {f.name: f for f in dataclasses.fields(SFTConfig) if f.init}


@dataclass
class TrainConfig:
    """Everything a training run needs; ``settings`` is the resolved recipe plus overrides."""

    domain: str
    data: str
    base: str
    out: str
    recipe: str = "demo"
    max_steps: int | None = None
    resume: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> TrainConfig:
        """Load the recipe section for ``domain`` and apply the overrides; check every key."""
        if self.domain not in TRAIN_DOMAINS:
            raise choice_error("domain", self.domain, TRAIN_DOMAINS)
        sections = load_recipe(self.recipe)
        settings = {**RECIPE_KEYS, **BASE_SETTINGS}
        settings.update(sections.get("defaults") or {})
        settings.update((sections.get("domains") or {}).get(self.domain) or {})
        settings.update(self.overrides)
        if self.max_steps is not None:
            if self.max_steps <= 0:
                raise UserError(f"--max-steps must be positive, got {self.max_steps}")
            settings["max_steps"] = self.max_steps
        check_keys(settings, f"recipe {self.recipe!r} (domain {self.domain})")
        if settings["overlong"] not in OVERLONG:
            raise choice_error("overlong policy", str(settings["overlong"]), OVERLONG)
        if not isinstance(settings.get("max_length"), int) or settings["max_length"] <= 0:
            raise UserError(
                f"max_length must be a positive integer (got {settings.get('max_length')!r}); "
                "set it in the recipe or with --set max_length=N"
            )
        self.settings = settings
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(recipe: str) -> dict[str, Any]:
    """A built-in recipe by name (``tinyr1``, ``demo``) or a YAML file with the same layout."""
    import yaml

    if recipe in BUILTIN_RECIPES:
        text = (RECIPES_DIR / f"train_{recipe}.yaml").read_text("utf-8")
        where = f"built-in recipe {recipe!r}"
    else:
        path = Path(recipe)
        if not path.is_file():
            raise UserError(
                f"recipe {recipe!r} is neither a built-in recipe ({', '.join(BUILTIN_RECIPES)}) "
                "nor an existing YAML file"
            )
        text, where = path.read_text("utf-8"), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not ({"defaults", "domains"} & data.keys()):
        raise UserError(f"{where}: expected a mapping with 'defaults' and/or 'domains' sections")
    unknown_domains = set(data.get("domains") or {}) - set(TRAIN_DOMAINS)
    if unknown_domains:
        raise UserError(f"{where}: unknown domain section(s) {sorted(unknown_domains)}; use {list(TRAIN_DOMAINS)}")
    return data


def check_keys(settings: dict[str, Any], where: str) -> None:
    known = set(sft_fields()) | set(RECIPE_KEYS)
    for key in settings:
        if key in RESERVED:
            raise UserError(f"{where}: {key!r} is set by the training stage itself and cannot be overridden")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"{where}: unknown setting {key!r} (not an SFTConfig field nor one of ours){hint}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML (numbers, booleans, null, lists, mappings)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads 2e-5 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def sft_kwargs(settings: dict[str, Any], output_dir: str, processes: int | None = None) -> dict[str, Any]:
    """Turn resolved settings into ``SFTConfig`` keyword arguments for this machine."""
    kwargs = {k: v for k, v in settings.items() if k not in RECIPE_KEYS}
    processes = processes or world_size()
    per_device = int(kwargs.get("per_device_train_batch_size", 8))
    kwargs["per_device_train_batch_size"] = per_device
    global_batch = settings.get("global_batch_size")
    if global_batch:
        per_step = per_device * processes
        if global_batch % per_step:
            raise UserError(
                f"global_batch_size {global_batch} is not a multiple of per_device_train_batch_size "
                f"{per_device} x {processes} process(es); change one with --set"
            )
        kwargs["gradient_accumulation_steps"] = global_batch // per_step
    if kwargs.get("deepspeed") == "zero3":
        kwargs["deepspeed"] = str(ZERO3_CONFIG)
    if kwargs.get("deepspeed"):
        _require("deepspeed", "the recipe asks for DeepSpeed (set deepspeed=null to train without it)")
    if kwargs.get("use_liger_kernel") == "auto":
        kwargs["use_liger_kernel"] = _cuda() and _installed("liger_kernel")
    elif kwargs.get("use_liger_kernel"):
        _require("liger_kernel", "use_liger_kernel is on")
    init = dict(kwargs.get("model_init_kwargs") or {})
    init.setdefault("dtype", _dtype(settings["dtype"], bool(kwargs.get("deepspeed"))))
    init.setdefault("attn_implementation", _attention(settings["attn_implementation"]))
    kwargs["model_init_kwargs"] = init
    kwargs["output_dir"] = output_dir
    return kwargs


def _dtype(value: str, deepspeed: bool) -> str:
    if value == "auto":
        return "bfloat16" if deepspeed else "float32"
    return value


def _attention(value: str) -> str:
    if value == "auto":
        return "flash_attention_2" if _cuda() and _installed("flash_attn") else "sdpa"
    if value == "flash_attention_2":
        _require("flash_attn", "attn_implementation is flash_attention_2")
    return value


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _require(module: str, why: str) -> None:
    if not _installed(module):
        raise UserError(f"{why}, but the Python package {module!r} is not installed")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
