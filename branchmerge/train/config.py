"""The one configuration object of a training run, and the hyper-parameter files it is filled from.

A hyper-parameter file (``--hparams``: ``tinyr1``, ``demo`` or a YAML path) has a ``defaults``
section and one section per domain; each section is a flat mapping of settings. A setting is either
one of ours (``HPARAM_KEYS``) or any field of TRL's ``SFTConfig``; ``--set key=value`` overrides
either kind. Keeping one flat namespace means the YAML, the command line and the stats file all
spell a setting the same way. (Pipeline *recipes* — stages — are ``branchmerge.pipeline.recipe``.)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge import settings as declared_settings
from branchmerge.errors import UserError, choice_error, did_you_mean
from branchmerge.records import DOMAINS
from branchmerge.settings import check_keys, read_yaml, setting

# "mixture" trains one model on several domains at once: the paper's Data Mixture baseline, and the
# demo's shared backbone. It uses the defaults (plus a "mixture" section if the file has one).
TRAIN_DOMAINS = (*DOMAINS, "mixture")

HPARAMS_DIR = Path(__file__).with_name("hparams")
BUILTIN_HPARAMS = tuple(sorted(p.stem for p in HPARAMS_DIR.glob("*.yaml")))
OVERLONG = ("drop", "truncate")
ZERO3_CONFIG = Path(__file__).with_name("zero3.json")

# Settings that are ours, not SFTConfig fields, with their defaults.
HPARAM_KEYS: dict[str, Any] = {
    # examples longer than max_length: dropped (the paper's 16k filter) or cut at max_length
    "overlong": "drop",
    # global batch = per-device batch x processes x accumulation; accumulation is derived from it
    "global_batch_size": None,
    # weights dtype at load: auto = bfloat16 under DeepSpeed (it keeps fp32 master weights), else float32
    "dtype": "auto",
    # auto = flash_attention_2 when flash-attn is installed on a GPU machine, else sdpa
    "attn_implementation": "auto",
    # model (the base model's own) | qwen (360-LLaMA-Factory's, as TinyR1 trained) | chatml | PATH.jinja
    "chat_template": "model",
}
# packing_strategy values handled here before TRL sees them: "plain" packs whole examples into rows
# whose attention spans every example in it (360-LLaMA-Factory's plain packing, TinyR1's math branch).
OWN_PACKING = ("plain",)
# SFTConfig fields the training stage sets itself.
RESERVED = ("output_dir", "resume_from_checkpoint", "do_train", "assistant_only_loss", "completion_only_loss")
# SFTConfig fields that also take a value this module resolves per machine (see ``sft_kwargs``).
RESOLVED_HERE = {"use_liger_kernel": "auto"}
# Always applied before the hyper-parameters: no experiment trackers unless asked, token counting on.
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
    """Everything a training run needs; ``settings`` is the resolved hyper-parameters plus overrides."""

    domain: str = setting(help="Domain of the branch (mixture: several --data at once).", choices=TRAIN_DOMAINS,
                          argument=True)
    data: list[str] = setting(help="Curation output folder, or parquet/jsonl file; repeat (or comma-join) to "
                              "train on a mixture.", split=",", input=True)
    base: str = setting(help="Base model: local directory or Hub id.", input=True)
    out: str = setting(help="Output folder (becomes the model folder).", short="-o")
    hparams: str = setting("demo", aliases=("--recipe",),
                           help=f"Hyper-parameters: {', '.join(BUILTIN_HPARAMS)}, or a YAML file.")
    max_steps: int | None = setting(None, help="Stop after this many optimizer steps.", ge=1)
    resume: bool = setting(False, help="Continue from the latest checkpoint in --out.")
    overwrite: bool = setting(False, help="Replace --out if an earlier branchmerge run wrote it.")
    overrides: dict[str, Any] = setting(default_factory=dict, flag="--set", pairs="yaml",
                                        help="Override a setting: key=value (any SFTConfig field); repeatable.")
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.data, str):  # Python callers may pass one comma-joined string
            self.data = [self.data]
        declared_settings.validate(self)
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite exclude each other: continue the run, or replace it")

    def resolve(self) -> TrainConfig:
        """Load the hyper-parameter section for ``domain`` and apply the overrides; check every key."""
        sections = load_hparams(self.hparams)
        settings = {**HPARAM_KEYS, **BASE_SETTINGS}
        settings.update(sections.get("defaults") or {})
        settings.update((sections.get("domains") or {}).get(self.domain) or {})
        settings.update(self.overrides)
        if self.max_steps is not None:
            settings["max_steps"] = self.max_steps
        check_settings(settings, f"hyper-parameters {self.hparams!r} (domain {self.domain})")
        if settings["overlong"] not in OVERLONG:
            raise choice_error("overlong policy", str(settings["overlong"]), OVERLONG)
        if not isinstance(settings.get("max_length"), int) or settings["max_length"] <= 0:
            raise UserError(
                f"max_length must be a positive integer (got {settings.get('max_length')!r}); "
                "set it in the hyper-parameters or with --set max_length=N"
            )
        self.settings = settings
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_hparams(name: str) -> dict[str, Any]:
    """Built-in hyper-parameters by name (``tinyr1``, ``demo``) or a YAML file with the same layout."""
    if name in BUILTIN_HPARAMS:
        path, where = HPARAMS_DIR / f"{name}.yaml", f"built-in hyper-parameters {name!r}"
    elif Path(name).is_file():
        path, where = Path(name), name
    else:
        raise UserError(f"--hparams {name!r} is neither a built-in set ({', '.join(BUILTIN_HPARAMS)}) nor an "
                        "existing YAML file")
    data = read_yaml(path, "training hyper-parameters")
    if not isinstance(data, dict) or not ({"defaults", "domains"} & data.keys()):
        raise UserError(f"{where}: expected a mapping with 'defaults' and/or 'domains' sections")
    check_keys(data, ("defaults", "domains", "description"), where)
    check_keys(data.get("domains") or {}, TRAIN_DOMAINS, f"{where}: domains")
    return data


def check_settings(settings: dict[str, Any], where: str) -> None:
    """Every key is ours or an SFTConfig field, and every value fits the SFTConfig field's type."""
    fields = sft_fields()
    known = set(fields) | set(HPARAM_KEYS)
    for key, value in settings.items():
        if key in RESERVED:
            raise UserError(f"{where}: {key!r} is set by the training stage itself and cannot be overridden")
        if key not in known:
            raise UserError(f"{where}: unknown setting {key!r} (not an SFTConfig field nor one of ours)"
                            f"{did_you_mean(key, known)}")
        if key in fields and value is not None and value != RESOLVED_HERE.get(key):
            _check_type(key, value, fields[key].type, where)


def _check_type(key: str, value: Any, annotation: Any, where: str) -> None:
    """Refuse a value of the wrong kind for a number or boolean field (learning_rate=fast), before any model load."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    for name, kind in (("bool", bool), ("float", float), ("int", int)):
        if text in (name, f"{name} | None", f"Optional[{name}]", f"typing.Optional[{name}]"):
            ok = isinstance(value, bool) if kind is bool else (
                isinstance(value, (int, float)) and not isinstance(value, bool)
                and (kind is float or float(value).is_integer()))
            if not ok:
                wanted = {"bool": "true or false", "float": "a number", "int": "a whole number"}[name]
                raise UserError(f"{where}: {key} must be {wanted}, got {value!r}")
            return


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML (numbers, booleans, null, lists, mappings)."""
    return declared_settings.parse_pairs(items, "--set", "yaml")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def sft_kwargs(settings: dict[str, Any], output_dir: str, processes: int | None = None) -> dict[str, Any]:
    """Turn resolved settings into ``SFTConfig`` keyword arguments for this machine."""
    kwargs = {k: v for k, v in settings.items() if k not in HPARAM_KEYS}
    if kwargs.get("packing") and kwargs.get("packing_strategy") in OWN_PACKING:
        kwargs["packing"] = False  # rows arrive packed (branchmerge.train.data.pack_plain)
        kwargs.pop("packing_strategy")
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
        _require("deepspeed", "the hyper-parameters ask for DeepSpeed (set deepspeed=null to train without it)")
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
