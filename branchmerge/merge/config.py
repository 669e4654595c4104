"""mergekit-style YAML configs: parsing, validation and per-tensor parameter resolution.

Accepted keys are mergekit's for whole-model merges: ``merge_method``, ``base_model``,
``models`` (each ``model`` with optional ``parameters``), ``parameters``, ``dtype``,
``out_dtype``, ``tokenizer_source`` (or ``tokenizer: {source: ...}``). Parameter values may be
scalars, gradients (lists interpolated over the layer index) or filter lists
(``[{filter: mlp, value: 0.5}, {value: 0}]``, first substring match wins), resolved with
mergekit's precedence: the model's own parameters, then the top-level ones.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchmerge.errors import UserError, choice_error
from branchmerge.merge.methods import METHODS, Method
from branchmerge.settings import read_yaml

log = logging.getLogger(__name__)

DTYPE_NAMES = ("bfloat16", "float16", "float32", "float64")
_TOP_KEYS = {
    "merge_method",
    "base_model",
    "models",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    "tokenizer",
    "name",
}
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class InputModel:
    ref: str  # as written in the config
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class MergeConfig:
    method: Method
    models: list[InputModel]  # mergekit's input order: as listed, base appended if missing
    base: int | None
    parameters: dict[str, Any]
    dtype: str | None
    out_dtype: str | None
    tokenizer_source: str | None  # None, "base" or an input's ref
    raw: dict[str, Any]
    reference: int = 0  # the base_model (or first model): config.json and default tokenizer donor

    @property
    def tokenizer_model(self) -> InputModel:
        """The model whose tokenizer and config files the output gets."""
        if self.tokenizer_source not in (None, "base"):
            return next(m for m in self.models if m.ref == self.tokenizer_source)
        return self.models[self.reference]


def load_config(path: str | Path) -> MergeConfig:
    path = Path(path)
    return parse_config(read_yaml(path, "merge config (mergekit YAML)"), where=str(path), root=path.parent)


def parse_config(raw: Any, where: str = "config", root: Path | None = None) -> MergeConfig:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a YAML mapping with merge_method and models")
    if "slices" in raw or "modules" in raw:
        raise UserError(f"{where}: 'slices'/'modules' (frankenmerges) are not supported; use 'models'")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    name = raw.get("merge_method")
    if not name:
        raise UserError(f"{where}: 'merge_method' is missing")
    if name not in METHODS:
        raise choice_error("merge_method", str(name), list(METHODS))
    method = METHODS[name]
    entries = raw.get("models")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{where}: 'models' must be a non-empty list of {{model: PATH}} entries")
    models = [_input_model(e, f"{where}: models[{i}]", root) for i, e in enumerate(entries)]
    base = None
    if raw.get("base_model") is not None:
        base_model = _input_model({"model": raw["base_model"]}, f"{where}: base_model", root)
        base = next((i for i, m in enumerate(models) if m.path.resolve() == base_model.path.resolve()), None)
        if base is None:  # mergekit adds a base that is not listed, at the end
            models.append(base_model)
            base = len(models) - 1
    if len({m.path.resolve() for m in models}) != len(models):
        raise UserError(f"{where}: the same model is listed twice")
    if method.base == "required" and base is None:
        raise UserError(f"{where}: merge_method {name} needs a base_model")
    reference = base if base is not None else 0  # config/tokenizer donor, even for base-free methods
    if method.base == "ignored":
        base = None
    n = len(models)
    if n < method.min_inputs or (method.max_inputs is not None and n > method.max_inputs):
        want = method.min_inputs if method.max_inputs == method.min_inputs else f"at least {method.min_inputs}"
        raise UserError(f"{where}: {name} takes {want} models (base included); got {n}")
    tok = raw.get("tokenizer_source")
    if raw.get("tokenizer") is not None:
        if tok is not None:
            raise UserError(f"{where}: give either 'tokenizer' or 'tokenizer_source', not both")
        spec = raw["tokenizer"]
        tok = spec.get("source") if isinstance(spec, dict) else None
        if tok is None or set(spec) - {"source"}:
            raise UserError(f"{where}: only 'tokenizer: {{source: base|MODEL}}' is supported")
    if tok is not None and tok != "base" and tok not in {m.ref for m in models}:
        raise UserError(
            f"{where}: tokenizer_source {tok!r} must be 'base' or one of the models "
            f"({', '.join(m.ref for m in models)}); 'union' is not supported"
        )
    if tok == "base" and raw.get("base_model") is None:
        raise UserError(f"{where}: tokenizer_source: base needs a base_model")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise UserError(f"{where}: 'parameters' must be a mapping")
    cfg = MergeConfig(
        method=method,
        models=models,
        base=base,
        parameters=parameters,
        dtype=_dtype(raw.get("dtype"), f"{where}: dtype"),
        out_dtype=_dtype(raw.get("out_dtype"), f"{where}: out_dtype"),
        tokenizer_source=tok,
        raw=raw,
        reference=reference,
    )
    known = set(method.shared) | set(method.per_input)
    for scope, params in [("parameters", parameters)] + [(f"{m.ref} parameters", m.parameters) for m in models]:
        for key in sorted(set(params) - known):
            log.warning("%s: parameter %r is not used by %s (ignored, as mergekit does)", scope, key, name)
    return cfg


def _input_model(entry: Any, where: str, root: Path | None) -> InputModel:
    if isinstance(entry, str):
        entry = {"model": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        raise UserError(f"{where}: expected {{model: PATH, parameters: {{...}}}}")
    ref = entry["model"]
    if "+" in ref:
        raise UserError(f"{where}: LoRA references ({ref}) are not supported; merge the adapter first")
    path = Path(ref).expanduser()
    if not path.is_dir() and root is not None and not path.is_absolute() and (root / path).is_dir():
        path = root / path
    if not path.is_dir():
        raise UserError(
            f"{where}: model {ref!r} is not a local directory. branchmerge does not download weights: "
            f"fetch it first (e.g. `hf download {ref} --local-dir DIR`) and put DIR in the config"
        )
    params = entry.get("parameters") or {}
    if not isinstance(params, dict):
        raise UserError(f"{where}: 'parameters' must be a mapping")
    return InputModel(ref, path, params)


def _dtype(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in DTYPE_NAMES:
        raise UserError(f"{where}: unknown dtype {value!r}; valid choices: {', '.join(DTYPE_NAMES)}")
    return value


def layer_t(tensor_name: str, num_layers: int) -> float:
    """mergekit's gradient position: layer / (layers - 1) inside layers, 0 for other weights."""
    m = _LAYER.search(tensor_name)
    if not m:
        return 0.0
    return int(m.group(1)) / (num_layers - 1) if num_layers > 1 else 1.0


def evaluate(setting: Any, tensor_name: str, t: float, kind: type, where: str) -> Any:
    """One parameter setting for one tensor: scalar, gradient, or filter list; None if no filter matches."""
    if isinstance(setting, dict):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return _validate(setting, kind, where)
    if isinstance(setting, list) and setting:
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            values = [_validate(e, kind, where) for e in setting]
            if kind is not float:
                return values[int(t * (len(values) - 1))]
            pos = t * (len(values) - 1)
            i0 = int(pos)
            i1 = min(len(values) - 1, i0 + 1)
            frac = pos - i0
            return float((1 - frac) * values[i0] + frac * values[i1])
        for cond in setting:
            if not isinstance(cond, dict) or "value" not in cond:
                raise UserError(f"{where}: expected a list of numbers or of {{filter, value}} entries")
            filt = cond.get("filter")
            if filt is None or filt == "*" or (tensor_name and filt in tensor_name):
                return evaluate(cond["value"], tensor_name, t, kind, where)
        return None
    if isinstance(setting, list):
        return None
    raise UserError(f"{where}: unexpected parameter value {setting!r}")


def _validate(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: expected a number, got {value!r}") from exc
    return str(value)


def resolve(cfg: MergeConfig, tensor_name: str, num_layers: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Shared and per-input parameter values for one tensor."""
    t = layer_t(tensor_name, num_layers)
    method = cfg.method

    def one(name: str, default: Any, scopes: list[dict[str, Any]], owner: str) -> Any:
        kind = bool if isinstance(default, bool) else str if isinstance(default, str) else float
        for scope in scopes:
            if name in scope:
                value = evaluate(scope[name], tensor_name, t, kind, f"{owner} parameter {name}")
                if value is not None:
                    return value
        if default is None:
            raise UserError(f"missing required parameter {name!r} for {owner} (tensor {tensor_name})")
        return default

    shared = {k: one(k, d, [cfg.parameters], "the merge") for k, d in method.shared.items()}
    per: list[dict[str, Any]] = []
    for i, m in enumerate(cfg.models):
        if i == cfg.base and not method.per_input_on_base:
            per.append({})
            continue
        per.append({k: one(k, d, [m.parameters, cfg.parameters], f"model {m.ref}") for k, d in method.per_input.items()})
    if "variant" in shared and shared["variant"] not in ("code", "paper"):
        raise choice_error("arcee_fusion variant", shared["variant"], ["code", "paper"])
    return shared, per
