"""``branchmerge evaluate``: benchmarks on a model -> DIR/<bench>/{samples.jsonl,summary.json,config.json}."""

from __future__ import annotations

from pathlib import Path

import typer

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.evaluate.config import EvaluateConfig

HELP = """Evaluate a model on benchmarks with the DeepSeek-R1 protocol (T=0.6, top-p 0.95, 32k tokens, n samples).

Writes DIR/<bench>/samples.jsonl (every graded sample), summary.json (pass@1, pass@k, cons@n, token
statistics) and config.json (provenance). Benchmarks: aime24, aime25, amc23, math500, gpqa_diamond,
livecodebench, or a YAML file of your own (--bench my.yaml[:name]).

Example: branchmerge evaluate --bench aime24 --bench math500
--model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --engine vllm --out results/r1-1.5b

Offline: branchmerge evaluate --bench aime24 --data aime24.jsonl --model ./tiny --n 2
--max-tokens 64 --out results/tiny
"""


def _per_bench(items: list[str], benches: list[str], flag: str, form: str, paths: bool = False) -> dict[str, str]:
    """``VALUE`` (for every benchmark) or ``BENCH=VALUE`` items as {benchmark: value}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if sep and not (paths and Path(item).exists()):
            if name not in benches:
                raise UserError(f"{flag} {item!r}: {name!r} is not one of --bench ({', '.join(benches)})")
            out[name] = value
        elif len(benches) == 1 or not paths:
            out.update({b: item for b in (benches if not paths else benches[:1])})
        else:
            raise UserError(f"{flag} {item!r}: with several --bench, write {flag} {form}")
    return out


def _run(cfg: EvaluateConfig) -> None:
    from branchmerge.benchmarks import resolve, with_template
    from branchmerge.console import result
    from branchmerge.evaluate.run import RunOptions, cell, claim_bench, load_for, run_benchmark
    from branchmerge.network import check_hub
    from branchmerge.outdir import claim_parent
    from branchmerge.records import iter_rows

    out = Path(cfg.out)
    specs = [spec for name in cfg.bench for spec in resolve(name)]
    templates = _per_bench(cfg.template, [s.name for s in specs], "--template", "BENCH=NAME")
    specs = [with_template(spec, templates[spec.name]) if spec.name in templates else spec for spec in specs]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"--bench names a benchmark twice: {', '.join(names)}")
    data_files = _per_bench(cfg.data, names, "--data", "NAME=PATH", paths=True)
    engine_options = dict(cfg.engine_options)
    if cfg.engine == "openai":
        engine_options.setdefault("api_key_env", cfg.api_key_env)
        if cfg.base_url:
            engine_options["base_url"] = cfg.base_url
    runs = [
        RunOptions(
            model=cfg.model, engine=cfg.engine, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
            max_tokens=cfg.max_tokens, seed=cfg.seed, limit=cfg.limit, data=data_files.get(spec.name),
            resume=cfg.resume, rescore=cfg.rescore, overwrite=cfg.overwrite, force_think=cfg.force_think,
            engine_options=engine_options, loader_options={"release": cfg.release, "date_window": cfg.date_window},
            grade_workers=cfg.grade_workers, executor=cfg.executor, ray_address=cfg.ray_address,
        )
        for spec in specs
    ]
    # output folders and every benchmark's data first: a taken folder or a gated dataset fails before a large
    # model loads
    for path in data_files.values():  # unreadable local data is refused before any folder is made
        next(iter_rows(path, "--data"), None)
    if not cfg.rescore:
        claim_parent(out, "evaluation-bench")
        for spec, opts in zip(specs, runs):
            claim_bench(out / spec.name, opts)
        if cfg.engine != "openai" and not Path(cfg.model).exists():
            check_hub()  # once, within seconds, before a model download (datasets check it themselves)
    problems = [None if cfg.rescore else load_for(spec, opts) for spec, opts in zip(specs, runs)]
    backend = None
    if not cfg.rescore:
        from branchmerge.engines import get_engine

        backend = get_engine(cfg.engine, model=cfg.model, **engine_options)
    for spec, opts, loaded in zip(specs, runs, problems):
        summary = run_benchmark(spec, opts, out, engine=backend, loaded=loaded)
        m = summary["metrics"]
        result(
            f"{spec.name}: {cell(summary)} pass@1 (mean tokens) · n={summary['n']} · "
            f"{summary['num_problems']} problems · cons@n {m['cons@n'] * 100:.1f} · "
            f"truncated {m['truncated_rate'] * 100:.1f}% -> {out / spec.name}"
        )


def register(app: typer.Typer) -> None:
    function, cls = settings.command(EvaluateConfig, _run, what="evaluation")
    app.command("evaluate", cls=cls, help=HELP)(function)
