"""Settings declared once.

Each stage's configuration is a dataclass whose fields are declared with ``setting(...)``: the
field's name, type and default are the dataclass's; the flag, hidden old spellings, help and checks
are the setting's. Everything else is generated from that one declaration:

- the command-line options (``command`` builds the Typer command, old spellings stay accepted);
- YAML files (``build`` reads ``--config FILE``: the file overrides defaults, flags override the file);
- the checks, with messages that name the flag or the file and key;
- the recipe runner's option check and the cards' lists of settings (``declared``).

The one YAML reader (``read_yaml``) and the one ``KEY=VALUE`` parser (``parse_pairs``) live here too.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Annotated, Any

from branchmerge.errors import UserError, did_you_mean

PAIRS = ("text", "yaml", "alternatives")  # how KEY=VALUE values are read: as text, as YAML, or a|b|c lists


@dataclass(frozen=True)
class Setting:
    """How one config field appears to users (see ``setting``)."""

    help: str
    flag: str | None = None
    short: str | None = None
    aliases: tuple[str, ...] = ()
    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    cli: bool = True
    argument: bool = False
    pairs: str | None = None
    split: str | None = None
    metavar: str | None = None
    convert: Callable[[Any, str], Any] | None = None
    input: bool = False


def setting(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, flag: str | None = None,
            short: str | None = None, aliases: Iterable[str] = (), choices: Iterable[Any] | None = None,
            ge: float | None = None, gt: float | None = None, le: float | None = None, cli: bool = True,
            argument: bool = False, pairs: str | None = None, split: str | None = None,
            metavar: str | None = None, convert: Callable[[Any, str], Any] | None = None,
            input: bool = False) -> Any:
    """A dataclass field with its user-facing declaration.

    ``flag`` defaults to ``--name-with-dashes``; ``aliases`` are old spellings, accepted but not shown;
    ``choices``/``ge``/``gt``/``le`` are checked wherever a value comes from; ``cli=False`` keeps a
    setting out of the command line (file and Python only); ``argument`` makes it positional;
    ``pairs`` reads a mapping from repeatable ``KEY=VALUE`` items; ``split`` lets list items be joined;
    ``convert(value, where)`` turns a user's spelling into the declared type first (``5B`` -> bytes);
    ``input`` marks a path (or Hub id) the command reads, which ``run --dry-run`` checks before a run.
    """
    if pairs is not None and pairs not in PAIRS:
        raise ValueError(f"pairs must be one of {PAIRS}")
    spec = Setting(help=help, flag=flag, short=short, aliases=tuple(aliases),
                   choices=None if choices is None else tuple(choices), ge=ge, gt=gt, le=le, cli=cli,
                   argument=argument, pairs=pairs, split=split, metavar=metavar, convert=convert, input=input)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"setting": spec})


@dataclass(frozen=True)
class Declared:
    """A field of a config class together with its declaration and resolved type."""

    name: str
    type: Any  # the declared type without Optional
    optional: bool
    default: Any  # MISSING when required
    spec: Setting

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How messages name the setting: its flag, or DOMAIN for a positional argument."""
        return self.name.upper() if self.spec.argument else self.flag

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def kind(self) -> str:
        """scalar | list | mapping"""
        origin = typing.get_origin(self.type)
        if origin is dict or self.type is dict:
            return "mapping"
        if origin in (list, tuple) or self.type is list:
            return "list"
        return "scalar"

    def names(self) -> set[str]:
        """Every spelling that means this setting in a file: field name, flag and aliases (with or without dashes)."""
        spellings = {self.name, self.flag, *self.spec.aliases}
        return {s.lstrip("-").replace("-", "_") for s in spellings}


def declared(cls: type) -> list[Declared]:
    """The declared settings of a config dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        tp, optional = _unwrap(hints[f.name])
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        out.append(Declared(f.name, tp, optional, default, spec))
    return out


def _unwrap(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


# -- values ----------------------------------------------------------------------------------------


def coerce(item: Declared, value: Any, where: str) -> Any:
    """``value`` (from YAML, the command line or Python) as the declared type, checked; errors name ``where``."""
    if value is None:
        if item.optional:
            return None
        raise UserError(f"{where}: a value is required")
    if item.spec.convert is not None:
        value = item.spec.convert(value, where)
    if item.kind == "mapping":
        if isinstance(value, dict):
            return {str(k): _pair_value(v, item.spec.pairs) if isinstance(v, str) else v for k, v in value.items()}
        items = value if isinstance(value, list) else [value]
        return parse_pairs([str(v) for v in items], where, item.spec.pairs or "text")
    if item.kind == "list":
        items = value if isinstance(value, (list, tuple)) else [value]
        (inner,) = typing.get_args(item.type) or (str,)
        out = []
        for v in items:
            parts = str(v).split(item.spec.split) if item.spec.split and isinstance(v, str) else [v]
            out += [_scalar(inner, p.strip() if isinstance(p, str) else p, where) for p in parts
                    if not (isinstance(p, str) and not p.strip())]
        for v in out:
            _check(item, v, where)
        return out
    value = _scalar(item.type, value, where)
    _check(item, value, where)
    return value


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise UserError(f"{where}: expected a whole number, got {value!r}")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip().replace("_", ""))
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected a whole number, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is Path:
        return Path(value)
    if tp in (str, Any):
        if isinstance(value, (dict, list)):
            raise UserError(f"{where}: expected a single value, got {type(value).__name__}")
        return str(value) if tp is str else value
    return value


def _check(item: Declared, value: Any, where: str) -> None:
    spec = item.spec
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(str(c) for c in spec.choices)
        noun = item.name.replace("_", " ")
        raise UserError(f"{where}: unknown {noun} {value!r}{did_you_mean(str(value), map(str, spec.choices))}; "
                        f"valid: {shown}")
    bounds = ((spec.ge, lambda v, b: v >= b, ">="), (spec.gt, lambda v, b: v > b, ">"), (spec.le, lambda v, b: v <= b, "<="))
    for bound, ok, sign in bounds:
        if bound is not None and isinstance(value, (int, float)) and not ok(value, bound):
            positive = (sign, bound) == (">", 0) or (sign, bound, type(value)) == (">=", 1, int)
            raise UserError(f"{where}: must be {'positive' if positive else f'{sign} {bound:g}'}, got {value!r}")


def validate(config: Any) -> None:
    """Check every declared field of a config object (for configs built in Python, not via ``build``)."""
    for item in declared(type(config)):  # object.__setattr__: frozen configs too
        object.__setattr__(config, item.name, coerce(item, getattr(config, item.name), item.label))


def build(cls: type, file: str | Path | None = None, given: dict[str, Any] | None = None, what: str = "") -> Any:
    """A config from its defaults, then ``file`` (YAML, any spelling of a setting), then ``given``
    values that are not None; every value checked, every error naming the flag or the file and key.
    ``what`` names the kind of settings in messages ("curation")."""
    noun = f"{what} setting" if what else "setting"
    items = {item.name: item for item in declared(cls)}
    spelling = {name: item.name for item in items.values() for name in item.names()}
    values: dict[str, Any] = {}
    if file is not None:
        data = read_yaml(file, f"{noun}s") or {}
        if not isinstance(data, dict):
            raise UserError(f"{file}: expected a mapping of {noun}s, got {type(data).__name__}")
        for key, value in data.items():
            name = spelling.get(str(key).replace("-", "_"))
            if name is None:
                raise UserError(f"{file}: unknown {noun} {key!r}{did_you_mean(str(key), items)}; valid: "
                                f"{', '.join(items)}")
            values[name] = coerce(items[name], value, f"{file}: {key}")
    for name, value in (given or {}).items():
        if value is None:
            continue
        if name not in items:
            raise UserError(f"unknown {noun} {name!r}{did_you_mean(name, items)}")
        values[name] = coerce(items[name], value, items[name].label)
    missing = [item for item in items.values() if item.required and item.name not in values]
    if missing:
        names = ", ".join(i.label for i in missing)
        raise UserError(f"missing {names}" + (" (give it on the command line or in --config)" if file is None
                                                else f" (not in {file} either)"))
    return cls(**values)


def canonical(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` keyed by field name, whatever spelling (flag, alias, dashes) each key used."""
    spelling = {name: item.name for item in declared(cls) for name in item.names()}
    return {spelling.get(str(k).replace("-", "_"), str(k)): v for k, v in options.items()}


def as_dict(config: Any) -> dict[str, Any]:
    """The declared settings of ``config`` as plain data (what stats.json and the cards record)."""
    return {item.name: getattr(config, item.name) for item in declared(type(config))}


# -- one YAML reader, one KEY=VALUE parser --------------------------------------------------------


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML file; every failure is one line naming the file (and the line for syntax errors)."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected a YAML file of {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (expected a YAML file of {what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as a YAML file of {what} ({type(exc).__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML{line} ({problem})") from None


def check_keys(mapping: dict[str, Any], valid: Iterable[str], where: str) -> None:
    """Refuse unknown keys of a YAML mapping, with a did-you-mean."""
    valid = list(valid)
    for key in mapping:
        if key not in valid:
            raise UserError(f"{where}: unknown key {key!r}{did_you_mean(str(key), valid)}; valid: "
                            f"{', '.join(sorted(valid))}")


def yaml_value(text: str) -> Any:
    """A command-line value read as YAML (numbers, booleans, null, lists), '2e-5' included."""
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads 2e-5 as a string
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return value


def _pair_value(text: str, how: str | None) -> Any:
    if how == "yaml":
        return yaml_value(text)
    if how == "alternatives":
        return [v for v in text.split("|")]
    return text


def parse_pairs(items: Iterable[str], flag: str, how: str = "text") -> dict[str, Any]:
    """``["a=1", "b=2,c=3"]`` -> ``{"a": ..., "b": ..., "c": ...}``; ``how`` reads the values
    as text, as YAML, or as ``x|y`` alternatives. A comma splits items only where a key follows."""
    out: dict[str, Any] = {}
    for item in items:
        for part in _split_items(item):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise UserError(f"{flag} expects key=value, got {part!r}")
            out[key.strip()] = _pair_value(value.strip(), how)
    return out


def _split_items(item: str) -> list[str]:
    """'a=1,b=x,y' -> ['a=1', 'b=x,y']: a comma starts a new item only when 'key=' follows it."""
    parts: list[str] = []
    for chunk in item.split(","):
        if parts and "=" not in chunk.split(",")[0]:
            parts[-1] += "," + chunk
        elif chunk.strip():
            parts.append(chunk)
    return [p.strip() for p in parts if p.strip()]


# -- the command line ------------------------------------------------------------------------------


def _cli_annotation(item: Declared) -> Any:
    import typer

    spec = item.spec
    # every value reaches ``coerce`` as text, so all checks and their messages are ours (one line, exit 2)
    tp: Any = list[str] if item.kind in ("mapping", "list") else bool if item.type is bool else str
    help_text = spec.help
    if spec.choices and item.kind != "scalar":
        help_text += f" One of: {', '.join(map(str, spec.choices))}."
    if not item.required and item.default not in (None, [], {}, ()) and item.kind == "scalar":
        shown = str(item.default).lower() if isinstance(item.default, bool) else str(item.default)
        help_text += f"  [default: {shown}]"
    metavar = spec.metavar or ("KEY=VALUE" if item.kind == "mapping" else
                               "|".join(str(c) for c in spec.choices) if spec.choices and item.kind == "scalar"
                               else item.flag.lstrip("-").replace("-", "_").upper())
    if spec.argument:
        info = typer.Argument(help=help_text, show_default=False, metavar=metavar)
        return Annotated[tp if item.required else tp | None, info]
    negative = tp is bool and not item.flag.startswith("--no-")  # --no-think has no --no-no-think
    decls = [f"{item.flag}/--no-{item.flag[2:]}" if negative else item.flag]
    if spec.short:
        decls.append(spec.short)
    info = typer.Option(*decls, help=help_text, show_default=False, metavar=None if tp is bool else metavar)
    return Annotated[tp | None, info]


def aliases_of(cls: type) -> dict[str, str]:
    """Old spelling -> current flag, for every declared setting of ``cls`` on the command line."""
    out = {}
    for item in declared(cls):
        for alias in item.spec.aliases:
            out[alias] = item.flag
            if item.type is bool and item.kind == "scalar":
                out[f"--no-{alias[2:]}"] = f"--no-{item.flag[2:]}"
    return out


def command_class(cls: type) -> type:
    """A Typer command class for the settings of ``cls``: it accepts their old spellings without showing
    them in --help, and tells the recipe runner which config class its options fill."""
    from typer.core import TyperCommand

    class AliasedCommand(TyperCommand):
        hidden_aliases = aliases_of(cls)
        config_class = cls
        fixed: dict[str, Any] = {}

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            return super().parse_args(ctx, rewrite_aliases(args, self.hidden_aliases))

        def get_params(self, ctx: Any) -> list[Any]:
            params = super().get_params(ctx)
            for param in params:  # help shows an argument's metavar (DIR, math|code), not Typer's "<str>"
                if getattr(param, "param_type_name", "") == "argument":
                    param.display_type_rich = lambda ctx: None
            return params

    return AliasedCommand


def rewrite_aliases(args: list[str], aliases: dict[str, str]) -> list[str]:
    """``--n-samples 4`` / ``--n-samples=4`` -> ``--n 4`` / ``--n=4``; nothing after ``--`` is touched."""
    out, literal = [], False
    for arg in args:
        if literal or not arg.startswith("--"):
            out.append(arg)
        elif arg == "--":
            literal = True
            out.append(arg)
        else:
            name, sep, value = arg.partition("=")
            out.append(aliases.get(name, name) + sep + value)
    return out


def command(cls: type, run: Callable[[Any], None], *, fixed: dict[str, Any] | None = None,
            config_option: bool = True, exclude: Iterable[str] = (), what: str = "") -> tuple[Callable[..., None], type]:
    """A Typer command function (and its command class) whose options are the settings of ``cls``.

    ``fixed`` values are set by the command itself (``curate math`` fixes the domain); with
    ``config_option`` a ``--config FILE.yaml`` supplies any setting (flags override it). The command
    builds the config with ``build`` and calls ``run(config)``.
    """
    import typer

    fixed = dict(fixed or {})
    skip = set(fixed) | set(exclude)
    items = [i for i in declared(cls) if i.spec.cli and i.name not in skip]
    arguments = [i for i in items if i.spec.argument]
    options = [i for i in items if not i.spec.argument]
    params = [inspect.Parameter(i.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=inspect.Parameter.empty if i.required else None,
                                annotation=_cli_annotation(i)) for i in arguments]
    params += [inspect.Parameter(i.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_cli_annotation(i))
               for i in options]
    if config_option:
        info = typer.Option("--config", help="YAML file with any of these settings (flags override it).",
                            show_default=False)
        params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Path | None, info]))

    def invoke(**kwargs: Any) -> None:
        file = kwargs.pop("config", None) if config_option else None
        given = {k: v for k, v in kwargs.items() if v is not None and v != []}
        run(build(cls, file, {**given, **fixed}, what=what))

    invoke.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    invoke.__annotations__ = {p.name: p.annotation for p in params}
    klass = command_class(cls)
    klass.fixed = fixed  # what the command sets itself, for the recipe runner's plan
    return invoke, klass
