"""``branchmerge merge``: a mergekit YAML config (or the two-model shorthand) into a model directory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from branchmerge.errors import UserError

HELP = (
    "Merge models: arcee_fusion, ties, dare_ties, dare_linear, task_arithmetic, linear, slerp, model_stock.\n\n"
    "Reads a mergekit YAML config, streams every tensor from memory-mapped safetensors through the method "
    "and writes it into pre-sized output shards. --mode compat (default) gives tensors bit-identical to "
    "mergekit 0.1.5 on CPU for the same config and --seed; --mode fast may differ as stats.json states. "
    "The output dtype is the config's out_dtype, else dtype.\n\n"
    "Examples:\n\n"
    "  branchmerge merge fusion.yaml runs/merged\n\n"
    "  branchmerge merge --method arcee_fusion --base runs/science --model runs/math --out runs/mid --dtype bfloat16"
)


def parse_size(text: str) -> int:
    """'5B', '500M', '2GB', '1e9' or a plain byte count -> bytes (K/M/B are 1e3/1e6/1e9, as in mergekit)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGB]?)B?\s*", text.upper())
    if not m:
        raise UserError(f"--shard-size {text!r}: expected a size such as 5B, 500M or 2000000000")
    scale = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}[m.group(2)]
    try:
        return int(float(m.group(1)) * scale)
    except ValueError as exc:
        raise UserError(f"--shard-size {text!r}: not a number") from exc


def register(app: typer.Typer) -> None:
    @app.command("merge", help=HELP, no_args_is_help=True)
    def merge(
        config: Annotated[Path | None, typer.Argument(help="mergekit-style YAML config.")] = None,
        out_dir: Annotated[Path | None, typer.Argument(help="Output model directory (replaced atomically).")] = None,
        mode: Annotated[str, typer.Option(help="compat (bit-identical to mergekit 0.1.5) or fast.")] = "compat",
        seed: Annotated[int, typer.Option(help="Seed for random draws (DARE masks, arcee_fusion quantile samples).")] = 0,
        shard_size: Annotated[str, typer.Option(help="Max bytes per output shard (K/M/B suffixes).")] = "5B",
        device: Annotated[str, typer.Option(help="Math device: cpu, cuda, cuda:1.")] = "cpu",
        workers: Annotated[int, typer.Option(help="Tensors merged concurrently.")] = 2,
        method: Annotated[str | None, typer.Option(help="Shorthand: method for --base/--model.")] = None,
        base: Annotated[Path | None, typer.Option(help="Shorthand: base (left) model directory.")] = None,
        model: Annotated[list[Path] | None, typer.Option(help="Shorthand: other model directory (repeatable).")] = None,
        out: Annotated[Path | None, typer.Option(help="Shorthand: output directory.")] = None,
        dtype: Annotated[str | None, typer.Option(help="Shorthand: working dtype (bfloat16, float16, float32).")] = None,
        out_dtype: Annotated[str | None, typer.Option(help="Shorthand: output dtype (default: --dtype).")] = None,
        tokenizer_source: Annotated[str | None, typer.Option(help="Shorthand: 'base' to align vocabularies to the base.")] = None,
    ) -> None:
        import os

        # idle OpenMP threads sleep instead of spinning: jobs run on several Python threads at once
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import yaml

        from branchmerge.console import err
        from branchmerge.merge.config import load_config, parse_config
        from branchmerge.merge.engine import Options, run_merge

        if method is not None:
            if config is not None or base is None or not model or out is None:
                raise UserError("shorthand use: branchmerge merge --method NAME --base DIR --model DIR [--model DIR] --out DIR")
            raw: dict = {
                "merge_method": method,
                "base_model": str(base),
                "models": [{"model": str(base)}] + [{"model": str(m)} for m in model],
            }
            for key, value in (("dtype", dtype), ("out_dtype", out_dtype), ("tokenizer_source", tokenizer_source)):
                if value is not None:
                    raw[key] = value
            cfg = parse_config(raw, where="command line", root=Path.cwd())
            text = yaml.safe_dump(raw, sort_keys=False)
            target = out
        else:
            if config is None or out_dir is None:
                raise UserError("usage: branchmerge merge CONFIG.yaml OUT_DIR (or the --method shorthand)")
            cfg = load_config(config)
            text = config.read_text(encoding="utf-8")
            target = out_dir
        opts = Options(mode=mode, seed=seed, shard_size=parse_size(shard_size), device=device, workers=workers)
        stats = run_merge(cfg, target, opts, config_text=text)
        anon = stats["peak_memory"].get("rss_anon_peak_bytes", 0) / 2**20
        line = f"merged {stats['tensors']} tensors with {cfg.method.name} ({mode}) into {target} in {stats['time_s']:.1f} s, peak anon {anon:.0f} MiB"
        if "fraction_from_right_overall" in stats:
            line += f"; {stats['fraction_from_right_overall']:.2%} of elements from the right model"
        err.print(line)
