"""``branchmerge evaluate``: benchmarks on a model -> DIR/<bench>/{samples.jsonl,summary.json,config.json}."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchmerge.errors import UserError

HELP = """Evaluate a model on benchmarks with the DeepSeek-R1 protocol (T=0.6, top-p 0.95, 32k tokens, n samples).

Writes DIR/<bench>/samples.jsonl (every graded sample), summary.json (pass@1, pass@k, cons@n, token
statistics) and config.json (provenance). Benchmarks: aime24, aime25, amc23, math500, gpqa_diamond,
livecodebench, or a YAML file of your own (--bench my.yaml[:name]).

Example: branchmerge evaluate --bench aime24 --bench math500
--model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --engine vllm --out results/r1-1.5b

Offline: branchmerge evaluate --bench aime24 --data aime24.jsonl --model ./tiny --n 2
--max-tokens 64 --out results/tiny
"""


H = {
    "bench": "Benchmark name or file.yaml[:name]; repeatable.",
    "out": "Results directory (one sub-directory per benchmark).",
    "model": "Model path, Hub id, or served model name.",
    "n": "Samples per problem (default: the benchmark's).",
    "seed": "Sampling seed (and the GPQA option-shuffle seed).",
    "data": "Local data file instead of the Hub: PATH, or NAME=PATH per benchmark; repeatable.",
    "base_url": "OpenAI-compatible server URL (--engine openai).",
    "api_key_env": "Environment variable holding the API key (may be unset for a loopback server).",
    "release": "LiveCodeBench release: v1..v6, latest, or a range such as v4_v5.",
    "date_window": "LiveCodeBench contest dates START..END (e.g. 2024-08-01..2025-02-01), or 'all'.",
    "force_think": "Append <think> to the generation prompt when the chat template does not.",
    "engine_opt": "Extra engine option KEY=VALUE (e.g. tensor_parallel_size=4); repeatable.",
    "grade_workers": "Grading processes (default: the grader's choice).",
}


def _data_map(data: list[str], benches: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in data:
        name, sep, path = item.partition("=")
        if sep and not Path(item).exists():
            out[name] = path
        elif len(benches) == 1:
            out[benches[0]] = item
        else:
            raise UserError(f"--data {item!r}: with several --bench, write --data NAME=PATH")
    return out


def _engine_options(pairs: list[str]) -> dict[str, object]:
    import yaml

    opts: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--engine-opt {pair!r}: expected KEY=VALUE (e.g. tensor_parallel_size=4)")
        opts[key.strip()] = yaml.safe_load(value)
    return opts


def register(app: typer.Typer) -> None:
    @app.command("evaluate", help=HELP)
    def evaluate(
        bench: Annotated[list[str], typer.Option("--bench", "-b", help=H["bench"])],
        out: Annotated[Path, typer.Option("--out", "-o", help=H["out"])],
        model: Annotated[str, typer.Option("--model", "-m", help=H["model"])] = "",
        engine: Annotated[str, typer.Option(help="hf | vllm | openai")] = "hf",
        n: Annotated[int | None, typer.Option("--n", help=H["n"])] = None,
        temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.6,
        top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling p.")] = 0.95,
        max_tokens: Annotated[int, typer.Option("--max-tokens", help="Generation cap per sample.")] = 32768,
        seed: Annotated[int, typer.Option(help=H["seed"])] = 0,
        limit: Annotated[int | None, typer.Option(help="Only the first N problems (smoke tests).")] = None,
        data: Annotated[list[str], typer.Option("--data", help=H["data"])] = [],  # noqa: B006
        resume: Annotated[bool, typer.Option(help="Continue a killed run in the same --out.")] = False,
        rescore: Annotated[bool, typer.Option(help="Regrade stored generations without generating.")] = False,
        base_url: Annotated[str | None, typer.Option("--base-url", help=H["base_url"])] = None,
        api_key_env: Annotated[str, typer.Option("--api-key-env", help=H["api_key_env"])] = "OPENAI_API_KEY",
        release: Annotated[str | None, typer.Option(help=H["release"])] = None,
        date_window: Annotated[str | None, typer.Option("--date-window", help=H["date_window"])] = None,
        force_think: Annotated[bool, typer.Option("--force-think", help=H["force_think"])] = False,
        engine_opt: Annotated[list[str], typer.Option("--engine-opt", help=H["engine_opt"])] = [],  # noqa: B006
        grade_workers: Annotated[int | None, typer.Option("--grade-workers", help=H["grade_workers"])] = None,
    ) -> None:
        from branchmerge.benchmarks.registry import resolve
        from branchmerge.console import out as console
        from branchmerge.evaluate.run import RunOptions, cell, load_for, run_benchmark

        if resume and rescore:
            raise UserError("--resume and --rescore exclude each other: --rescore only regrades stored samples")
        if not rescore and not model:
            raise UserError("--model is required (a path, a Hub id, or the served name with --engine openai)")
        if engine not in ("hf", "vllm", "openai"):
            from branchmerge.errors import choice_error

            raise choice_error("engine", engine, ["hf", "vllm", "openai"])
        specs = [spec for name in bench for spec in resolve(name)]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise UserError(f"--bench names a benchmark twice: {', '.join(names)}")
        data_files = _data_map(data, names)
        unknown = set(data_files) - set(names)
        if unknown:
            raise UserError(f"--data names benchmark(s) not in --bench: {', '.join(sorted(unknown))}")
        loader_options = {"release": release, "date_window": date_window}
        engine_options = _engine_options(engine_opt)
        if engine == "openai":
            engine_options.setdefault("api_key_env", api_key_env)
            if base_url:
                engine_options["base_url"] = base_url
        elif base_url:
            raise UserError("--base-url applies to --engine openai only")

        runs = [
            RunOptions(
                model=model, engine=engine, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                seed=seed, limit=limit, data=data_files.get(spec.name), resume=resume, rescore=rescore,
                force_think=force_think, engine_options=engine_options, loader_options=loader_options,
                grade_workers=grade_workers,
            )
            for spec in specs
        ]
        # every benchmark's data first: a gated or missing dataset fails before a large model loads
        problems = [None if rescore else load_for(spec, opts) for spec, opts in zip(specs, runs)]
        backend = None
        if not rescore:
            from branchmerge.engines import get_engine

            backend = get_engine(engine, model=model, **engine_options)
        for spec, opts, loaded in zip(specs, runs, problems):
            summary = run_benchmark(spec, opts, out, engine=backend, loaded=loaded)
            m = summary["metrics"]
            console.print(
                f"{spec.name}: [bold]{cell(summary)}[/] pass@1 (mean tokens) · n={summary['n']} · "
                f"{summary['num_problems']} problems · cons@n {m['cons@n'] * 100:.1f} · "
                f"truncated {m['truncated_rate'] * 100:.1f}% -> {out / spec.name}"
            )
