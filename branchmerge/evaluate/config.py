"""The settings of ``branchmerge evaluate``, declared once (``branchmerge.settings``).

The command line is generated from ``EvaluateConfig``; each benchmark then runs with its own
``RunOptions`` (the same settings, with that benchmark's local data file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.executors import EXECUTORS
from branchmerge.settings import setting

ENGINES = ("hf", "vllm", "openai")


@dataclass
class EvaluateConfig:
    bench: list[str] = setting(short="-b", split=",",
                               help="Benchmark name or file.yaml[:name]; repeatable or comma-separated.")
    out: str = setting(short="-o", help="Results folder (one sub-folder per benchmark).")
    model: str = setting("", short="-m", help="Model path, Hub id, or served model name.", input=True)
    engine: str = setting("hf", choices=ENGINES, help="Generation engine.")
    n: int | None = setting(None, ge=1, help="Samples per problem (default: the benchmark's).")
    temperature: float = setting(0.6, ge=0, help="Sampling temperature.")
    top_p: float = setting(0.95, flag="--top-p", gt=0, le=1, help="Nucleus sampling p.")
    max_tokens: int = setting(32768, ge=1, aliases=("--max-new-tokens",), help="Generation cap per sample.")
    seed: int = setting(0, help="Sampling seed (and the GPQA option-shuffle seed).")
    limit: int | None = setting(None, ge=1, help="Only the first N problems (smoke tests).")
    data: list[str] = setting(default_factory=list, input=True,
                              help="Local rows instead of the Hub (jsonl, json, csv, parquet): PATH, or NAME=PATH "
                              "per benchmark; repeatable.")
    resume: bool = setting(False, help="Continue a stopped run in the same --out.")
    overwrite: bool = setting(False, help="Replace a benchmark folder an earlier branchmerge run wrote.")
    rescore: bool = setting(False, help="Regrade stored generations without generating.")
    base_url: str | None = setting(None, help="OpenAI-compatible server URL (--engine openai).")
    api_key_env: str = setting("OPENAI_API_KEY", help="Environment variable holding the API key (may be unset "
                               "for a loopback server).")
    release: str | None = setting(None, help="LiveCodeBench release: v1..v6, latest, or a range such as v4_v5.")
    date_window: str | None = setting(None, help="LiveCodeBench contest dates START..END "
                                      "(e.g. 2024-08-01..2025-02-01), or 'all'.")
    template: list[str] = setting(default_factory=list, split=",",
                                  help="Registry prompt template instead of the benchmark's own: NAME, or BENCH=NAME "
                                  "per benchmark (tinyr1_math, tinyr1_gpqa, tinyr1_lcb: the TinyR1 release's prompts "
                                  "and grading); repeatable.")
    force_think: bool = setting(False, help="Append <think> to the generation prompt when the chat template "
                                "does not.")
    engine_options: dict[str, Any] = setting(default_factory=dict, flag="--engine-option", pairs="yaml",
                                             aliases=("--engine-opt", "--teacher-option"),
                                             help="Extra engine option KEY=VALUE (e.g. tensor_parallel_size=4); "
                                             "repeatable.")
    grade_workers: int | None = setting(None, flag="--workers", aliases=("--grade-workers",), ge=1,
                                        help="Grading processes (default: the grader's choice).")
    executor: str = setting("local", choices=EXECUTORS,
                            help="Where generation and grading run: local, or ray (a Ray cluster; "
                            "pip install 'branchmerge[ray]').")
    ray_address: str | None = setting(None, help="Ray cluster address (default: join this machine's cluster, "
                                      "else start a local one).")

    def __post_init__(self) -> None:
        settings.validate(self)
        if self.resume and self.rescore:
            raise UserError("--resume and --rescore exclude each other: --rescore only regrades stored samples")
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite exclude each other: continue the run, or replace it")
        if not self.rescore and not self.model:
            raise UserError("--model is required (a path, a Hub id, or the served name with --engine openai)")
        if self.base_url and self.engine != "openai":
            raise UserError("--base-url applies to --engine openai only")
        from branchmerge.benchmarks import loaders  # bad LiveCodeBench selections fail before any download

        if self.release:
            loaders.lcb_release_files(self.release)
        if self.date_window not in (None, "all"):
            loaders.parse_window(self.date_window)
