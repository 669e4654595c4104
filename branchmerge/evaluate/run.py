"""One benchmark run: problems -> requests -> engine -> stored generations -> verdicts -> summary.

Generations are appended to a run store (``DIR/<bench>/shards``) the moment each finishes, before
any grading, so a killed run resumes where it stopped (``--resume``) and a finished one can be
regraded without generating again (``--rescore``). Grading always runs over every stored row and
writes the consolidated ``samples.jsonl`` (+ Parquet), ``summary.json`` and ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from branchmerge.atomic import write_text
from branchmerge.benchmarks import BenchSpec, Loaded, load_benchmark
from branchmerge.console import fmt_tokens, log
from branchmerge.contracts import EvaluationConfig, EvaluationSummary, relative_to
from branchmerge.engines.base import Completion, Request, SamplingParams
from branchmerge.errors import UserError
from branchmerge.evaluate import metrics, provenance
from branchmerge.evaluate.prompts import Renderer, messages_for, raw_prompt
from branchmerge.outdir import claim
from branchmerge.records import RunStore, write_parquet

KEY = ("id", "sample_idx")
SHUFFLE_SEP = "::s"


@dataclass
class RunOptions:
    model: str
    engine: str = "hf"
    n: int | None = None
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    seed: int = 0
    limit: int | None = None
    data: str | None = None
    resume: bool = False
    rescore: bool = False
    overwrite: bool = False
    force_think: bool = False
    engine_options: dict[str, Any] = field(default_factory=dict)
    loader_options: dict[str, Any] = field(default_factory=dict)
    grade_workers: int | None = None
    executor: str = "local"  # where generation and grading run: local or ray
    ray_address: str | None = None


def model_display_name(model: str) -> str:
    return Path(model).name if Path(model).exists() else model.rstrip("/").split("/")[-1]


# -- sample layout ----------------------------------------------------------------------------------


@dataclass
class Unit:
    """One sample to produce: which problem, which sample index, and what the model is shown."""

    problem: dict[str, Any]
    sample_idx: int
    shown: Any  # the reference as shown (GPQA: shuffled options)


def plan(spec: BenchSpec, problems: list[dict[str, Any]], n: int, seed: int) -> list[Unit]:
    units = []
    shuffle = _shuffler() if spec.shuffle else None
    for row in problems:
        for s in range(n):
            shown = shuffle(row["reference"], row["id"], s, seed) if shuffle else row["reference"]
            units.append(Unit(row, s, shown))
    return units


def _shuffler():
    from branchmerge.verify import shuffle_options

    return shuffle_options


def build_requests(
    spec: BenchSpec, units: list[Unit], renderer: Renderer
) -> tuple[list[Request], dict[tuple[str, int], tuple[Unit, str]]]:
    """Requests and a map (request id, engine sample idx) -> (unit, prompt hash).

    Without shuffling one request per problem carries all n samples; with it every sample has its
    own prompt, so one request per (problem, sample) with n = 1.
    """
    requests: dict[str, Request] = {}
    hashes: dict[str, str] = {}
    index: dict[tuple[str, int], tuple[Unit, str]] = {}
    for unit in units:
        pid = unit.problem["id"]
        rid, engine_idx = (f"{pid}{SHUFFLE_SEP}{unit.sample_idx}", 0) if spec.shuffle else (pid, unit.sample_idx)
        if rid not in requests:
            raw = raw_prompt(spec.template, unit.problem, unit.shown)
            chat = raw if raw is not None else messages_for(spec.template, unit.problem, unit.shown)
            fields, hashes[rid] = renderer.request_fields(chat)
            requests[rid] = Request(id=rid, **fields)
        index[(rid, engine_idx)] = (unit, hashes[rid])
    return list(requests.values()), index


# -- token split ------------------------------------------------------------------------------------


class TokenCounter:
    """Splits completion tokens into thinking and answer tokens.

    With the model's tokenizer the answer segment is tokenized and the rest of the engine's count
    is thinking; without one (a remote server) the split is proportional to characters.
    """

    def __init__(self, tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer
        self.method = "tokenizer" if tokenizer is not None else "characters"

    def split(self, completion: Completion) -> tuple[int | None, int | None]:
        total = completion.completion_tokens
        if total is None:
            return None, None
        if not completion.answer:
            return total, 0
        if self.tokenizer is not None:
            answer = len(self.tokenizer(completion.answer, add_special_tokens=False)["input_ids"])
        else:
            answer = round(total * len(completion.answer) / max(len(completion.text), 1))
        answer = min(answer, total)
        return total - answer, answer


# -- the run ----------------------------------------------------------------------------------------


def load_for(spec: BenchSpec, opts: RunOptions) -> Loaded:
    """The problems a run will use (the CLI loads them all before it loads a possibly large model)."""
    loaded = load_benchmark(spec, data=opts.data, limit=opts.limit, **opts.loader_options)
    if not loaded.rows:
        raise UserError(f"{spec.name}: no problems selected from {loaded.version} (check --limit/--date-window)")
    return loaded


def claim_bench(bench_dir: Path, opts: RunOptions) -> bool:
    """Claim one benchmark's folder (see ``branchmerge.outdir``); True when an earlier run is resumed."""
    return claim(bench_dir, "evaluation-bench", resume=opts.resume, overwrite=opts.overwrite,
                 has_results=lambda p: RunStore(p, key_fields=KEY).has_rows())


def run_benchmark(
    spec: BenchSpec, opts: RunOptions, out_dir: Path, engine: Any = None, loaded: Loaded | None = None
) -> dict[str, Any]:
    """Generate (unless rescoring), grade and summarise one benchmark; return its summary."""
    bench_dir = out_dir / spec.name
    store = RunStore(bench_dir, key_fields=KEY, schema="generation")
    config_path = bench_dir / "config.json"
    if opts.rescore:
        if not store.shards():
            raise UserError(f"--rescore: {bench_dir} holds no stored generations to regrade")
        config = EvaluationConfig.read(config_path).dump() if config_path.exists() else {"bench": spec.name}
        config["rescored"] = _now()
        selection = config.get("selection")  # what the run covered (a resumed run may have narrowed --limit)
        keys = {(i, s) for i in selection["ids"] for s in range(selection["n"])} if selection else None
        return _finish(spec, store, bench_dir, config, opts, keys=keys)

    loaded = loaded or load_for(spec, opts)
    n = opts.n or spec.n
    params = SamplingParams(n=1 if spec.shuffle else n, temperature=opts.temperature, top_p=opts.top_p,
                            max_tokens=opts.max_tokens, seed=opts.seed)
    tokenizer = getattr(engine, "tokenizer", None)
    renderer = Renderer(tokenizer, opts.force_think)
    config = _config(spec, opts, n, params, loaded, engine, renderer, bench_dir)
    resumed = claim_bench(bench_dir, opts)
    _check_resume(config_path, config, resumed)
    done = store.open(resume=resumed)
    EvaluationConfig.model_validate(config).write(config_path)

    units = plan(spec, loaded.rows, n, opts.seed)
    requests, index = build_requests(spec, units, renderer)
    skip = {key for key, (unit, _) in index.items() if (unit.problem["id"], unit.sample_idx) in done}
    counter = TokenCounter(tokenizer)
    todo = len(units) - sum(1 for u in units if (u.problem["id"], u.sample_idx) in done)
    log.info("%s: %d problems x n=%d, %d sample(s) to generate (%s)", spec.name, len(loaded.rows), n, todo,
             loaded.version)

    def on_complete(completion: Completion) -> None:
        unit, digest = index[(completion.request_id, completion.sample_idx)]
        thinking, answer = counter.split(completion)
        row = {
            **unit.problem,
            "reference": unit.shown,
            **completion.to_row(),
            "sample_idx": unit.sample_idx,
            "prompt_hash": digest,
            "thinking_tokens": thinking,
            "answer_tokens": answer,
            "engine_error": completion.error,
        }
        store.append(row)

    try:
        if todo:
            from branchmerge.executors.work import distribute

            distribute(engine, _executor(opts, config)).generate(requests, params, on_complete=on_complete, skip=skip)
    finally:
        store.close()
    missing = {(u.problem["id"], u.sample_idx) for u in units} - store.keys()
    if missing:
        raise UserError(f"{spec.name}: the engine returned no completion for {len(missing)} sample(s), e.g. "
                        f"{sorted(missing)[0]}; rerun with --resume to generate them")
    config["split_method"] = counter.method
    config["selection"] = {"ids": [row["id"] for row in loaded.rows], "n": n}
    return _finish(spec, store, bench_dir, config, opts, keys={(u.problem["id"], u.sample_idx) for u in units})


def _finish(
    spec: BenchSpec, store: RunStore, bench_dir: Path, config: dict[str, Any], opts: RunOptions,
    keys: set[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    from branchmerge.executors.work import grade

    rows = [r for r in store.rows() if keys is None or (r["id"], r["sample_idx"]) in keys]
    grader_options = dict(spec.grader)
    graded = grade(_executor(opts, config), rows, domain=spec.domain, workers=opts.grade_workers,
                   show_progress=True, **grader_options)
    graded.sort(key=lambda r: (str(r["id"]), r["sample_idx"]))
    versions = provenance.versions()
    config["grader"] = {"options": grader_options, **{k: versions[k] for k in provenance.GRADER_PACKAGES}}
    summary = summarize(spec, graded, config)
    _write_samples(bench_dir, graded)
    EvaluationConfig.model_validate(config).write(bench_dir / EvaluationConfig.FILE)
    EvaluationSummary.model_validate(summary).write(bench_dir / EvaluationSummary.FILE)
    write_text(bench_dir / "README.md", card(summary))
    return summary


def summarize(spec: BenchSpec, rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """The summary.json content (``model_path`` as config.json has it: relative to the bench folder)."""
    scored = metrics.score(rows, spec.domain)
    ns = {p["n"] for p in scored["per_problem"]}
    return {
        "kind": "evaluation",
        "schema_version": EvaluationSummary.VERSION,
        "bench": spec.name,
        "bench_version": config.get("bench_version"),
        "domain": spec.domain,
        "model": config.get("model"),
        "model_path": config.get("model_path"),
        "n": min(ns) if ns else 0,
        "num_problems": len(scored["per_problem"]),
        "num_samples": len(rows),
        "metrics": scored["metrics"],
        "tokens": {**scored["tokens"], "split_method": config.get("split_method"),
                   "max_tokens": (config.get("sampling") or {}).get("max_tokens")},
        "per_problem": scored["per_problem"],
        "sampling": config.get("sampling"),
        "created": _now(),
    }


def cell(summary: dict[str, Any]) -> str:
    """The paper's table cell: "78.1 (11.8k)" = pass@1 in % and mean completion tokens in thousands."""
    return f"{summary['metrics']['pass@1'] * 100:.1f} ({fmt_tokens(summary['tokens']['completion']['mean'])})"


def card(summary: dict[str, Any]) -> str:
    m, t = summary["metrics"], summary["tokens"]["completion"]
    lo, hi = m["pass@1_ci95"]
    lines = [
        f"# {summary['bench']} · {summary['model']}",
        "",
        f"**{cell(summary)}** — pass@1 % (mean completion tokens), n = {summary['n']} samples on "
        f"{summary['num_problems']} problems ({summary['bench_version']}).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| pass@1 | {m['pass@1'] * 100:.2f} ± {m['pass@1_se'] * 100:.2f} (95% CI {lo * 100:.1f}–{hi * 100:.1f}) |",
        f"| cons@{summary['n']} | {m['cons@n'] * 100:.2f} |",
        f"| truncated / unparsed / error | {m['truncated_rate'] * 100:.1f}% / {m['unparsed_rate'] * 100:.1f}% / "
        f"{m['error_rate'] * 100:.1f}% |",
    ]
    if t["mean"] is not None:
        lines.append(f"| completion tokens mean / median / p90 / max | {t['mean']:.0f} / {t['median']:.0f} / "
                     f"{t['p90']:.0f} / {t['max']:.0f} (cap {summary['tokens'].get('max_tokens')}) |")
    lines += ["", "Files: `samples.jsonl` (every graded sample), `summary.json`, `config.json` (provenance).", ""]
    return "\n".join(lines)


def _write_samples(bench_dir: Path, rows: list[dict[str, Any]]) -> None:
    write_text(bench_dir / "samples.jsonl",
               "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    write_parquet(bench_dir / "samples.parquet", rows)


def _config(spec: BenchSpec, opts: RunOptions, n: int, params: SamplingParams, loaded: Any, engine: Any,
            renderer: Renderer, bench_dir: Path) -> dict[str, Any]:
    info = engine.info() if engine is not None and hasattr(engine, "info") else {"engine": opts.engine}
    tokenizer = renderer.tokenizer
    return {
        "kind": "evaluation-config",
        "schema_version": EvaluationConfig.VERSION,
        "bench": spec.name,
        "bench_version": loaded.version,
        "dataset": loaded.source,
        "spec": spec.to_dict(),
        "template_hash": spec.template_hash(),
        "model": model_display_name(opts.model),
        "model_path": relative_to(opts.model, bench_dir),
        "model_fingerprint": provenance.model_fingerprint(opts.model),
        "engine": info,
        "engine_options": {k: v for k, v in opts.engine_options.items() if "key" not in k.lower()},
        "chat_template_hash": provenance.chat_template_hash(tokenizer),
        "think_prefix": renderer.think.to_dict(),
        "sampling": {**params.to_dict(), "n": n, "requests_per_sample": spec.shuffle},
        "versions": provenance.versions(),
        "git_commit": provenance.git_commit(),
        "created": _now(),
    }


RESUME_FIELDS = ("bench_version", "model_path", "template_hash", "think_prefix")
RESUME_SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "seed")


def _check_resume(path: Path, config: dict[str, Any], resume: bool) -> None:
    """A resumed run must be the same experiment (n may grow; limit may change)."""
    if not resume or not path.exists():
        return
    old = EvaluationConfig.read(path).dump()
    diffs = [f for f in RESUME_FIELDS if old.get(f) != config.get(f)]
    diffs += [f"sampling.{f}" for f in RESUME_SAMPLING
              if (old.get("sampling") or {}).get(f) != config["sampling"].get(f)]
    if diffs:
        raise UserError(f"--resume: {path.parent} was made with different settings ({', '.join(diffs)}); "
                        "use a new --out directory, or the same settings")


def _executor(opts: RunOptions, config: dict[str, Any]) -> Any:
    """The run's executor (``--executor``); config.json records where the run ran."""
    from branchmerge.executors import get_executor

    executor = get_executor(opts.executor, opts.ray_address, opts.grade_workers)
    config["executor"] = executor.info()
    return executor


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
