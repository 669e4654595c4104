"""``branchmerge merge``: a mergekit YAML config (or the two-model shorthand) into a model directory.

The options are generated from ``MergeCommand``: how the merge runs (``options.Options``) plus what is
merged (a config file, or the shorthand) and where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.merge.options import Options
from branchmerge.settings import setting

HELP = (
    "Merge models: arcee_fusion, ties, dare_ties, dare_linear, task_arithmetic, linear, slerp, model_stock.\n\n"
    "Reads a mergekit YAML config, streams every tensor from memory-mapped safetensors through the method "
    "and writes it into pre-sized output shards. --mode compat (default) gives tensors bit-identical to "
    "mergekit 0.1.5 on CPU for the same config and --seed; --mode fast may differ as stats.json states. "
    "The output dtype is the config's out_dtype, else dtype. OUT must be new or empty, or an earlier merge "
    "output (with --overwrite).\n\n"
    "Examples:\n\n"
    "  branchmerge merge fusion.yaml runs/merged\n\n"
    "  branchmerge merge --method arcee_fusion --base runs/science --model runs/math --out runs/mid --dtype bfloat16\n\n"
    "  branchmerge merge --method linear --base runs/a --model runs/b --param weight=0.5 --out runs/soup"
)


@dataclass(frozen=True)
class MergeCommand(Options):
    config: Path | None = setting(None, argument=True, help="mergekit-style YAML config.", input=True)
    out_dir: Path | None = setting(None, argument=True, help="Output model folder (or give --out).")
    out: Path | None = setting(None, short="-o", help="Output model folder.")
    overwrite: bool = setting(False, help="Replace OUT if an earlier branchmerge merge wrote it.")
    method: str | None = setting(None, help="Shorthand: merge method for --base and --model.")
    base: Path | None = setting(None, help="Shorthand: base (left) model folder.", input=True)
    model: list[Path] = setting(default_factory=list, help="Shorthand: other model folder; repeatable.", input=True)
    dtype: str | None = setting(None, help="Shorthand: working dtype (bfloat16, float16, float32).")
    out_dtype: str | None = setting(None, help="Shorthand: output dtype (default: --dtype).")
    tokenizer_source: str | None = setting(None, help="Shorthand: 'base' to align vocabularies to the base.")
    parameters: dict[str, Any] = setting(default_factory=dict, flag="--param", pairs="yaml",
                                         help="Shorthand: method parameter KEY=VALUE for every model (weight, "
                                         "density, t, lambda, ...); repeatable.")

    @property
    def target(self) -> Path:
        if self.out is not None and self.out_dir is not None and self.out != self.out_dir:
            raise UserError(f"two output folders given ({self.out_dir} and --out {self.out}); give one")
        target = self.out or self.out_dir
        if target is None:
            raise UserError("no output folder: branchmerge merge CONFIG.yaml OUT, or --out OUT with the shorthand")
        return target

    def raw_config(self) -> tuple[dict[str, Any], str, Path | None]:
        """The mergekit config as data, its text, and the folder its relative paths start from."""
        import yaml

        from branchmerge.settings import read_yaml

        if self.method is None:
            if self.config is None:
                raise UserError("usage: branchmerge merge CONFIG.yaml OUT (or the --method shorthand)")
            if self.base or self.model:
                raise UserError("--base/--model are the shorthand's; with CONFIG.yaml put the models in the file")
            raw = read_yaml(self.config, "merge config (mergekit YAML)")
            return raw, self.config.read_text(encoding="utf-8"), self.config.parent
        if self.config is not None or self.base is None or not self.model:
            raise UserError("shorthand use: branchmerge merge --method NAME --base DIR --model DIR [--model DIR] "
                            "--out DIR [--param KEY=VALUE]")
        raw = {"merge_method": self.method, "base_model": str(self.base),
               "models": [{"model": str(self.base)}] + [{"model": str(m)} for m in self.model]}
        if self.parameters:
            raw["parameters"] = dict(self.parameters)
        for key in ("dtype", "out_dtype", "tokenizer_source"):
            if getattr(self, key) is not None:
                raw[key] = getattr(self, key)
        return raw, yaml.safe_dump(raw, sort_keys=False), Path.cwd()


def _run(cmd: MergeCommand) -> None:
    import os

    # idle OpenMP threads sleep instead of spinning: jobs run on several Python threads at once
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from branchmerge.console import result
    from branchmerge.merge.config import parse_config
    from branchmerge.merge.engine import run_merge

    target = cmd.target
    raw, text, root = cmd.raw_config()
    cfg = parse_config(raw, where=str(cmd.config or "command line"), root=root)
    opts = Options(mode=cmd.mode, seed=cmd.seed, shard_size=cmd.shard_size, device=cmd.device, workers=cmd.workers)
    stats = run_merge(cfg, target, opts, config_text=text, overwrite=cmd.overwrite)
    anon = stats["peak_memory"].get("rss_anon_peak_bytes", 0) / 2**20
    line = (f"merged {stats['tensors']} tensors with {cfg.method.name} ({cmd.mode}) into {target} in "
            f"{stats['time_s']:.1f} s, peak anon {anon:.0f} MiB")
    if stats.get("fraction_from_right_overall") is not None:
        line += f"; {stats['fraction_from_right_overall']:.2%} of elements from the right model"
    result(line)


def register(app: typer.Typer) -> None:
    function, cls = settings.command(MergeCommand, _run, config_option=False, what="merge")
    app.command("merge", cls=cls, help=HELP, no_args_is_help=True)(function)
