"""The one configuration object of a curation run.

Every setting is declared once here (``branchmerge.settings``): the command-line options of
``curate math|code|science``, ``--config FILE.yaml``, the recipe runner's checks and the cards all
come from these fields. Values from the file override the defaults, explicit flags override the
file. The resolved config is written into ``stats.json`` so a run can be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchmerge import settings
from branchmerge.chat import template_file
from branchmerge.errors import UserError
from branchmerge.executors import EXECUTORS
from branchmerge.records import DOMAINS
from branchmerge.settings import setting

SELECTIONS = ("first", "shortest", "all")
# Benchmarks checked for contamination when --decontam is not given (names of the benchmark registry).
DEFAULT_DECONTAM = {
    "math": ["aime24", "aime25", "amc23", "math500"],
    "code": ["livecodebench"],
    "science": ["gpqa_diamond"],
}


@dataclass
class CurateConfig:
    """Everything a curation run needs; see ``branchmerge curate math --help`` for each field."""

    domain: str = setting(help="Domain of the problems.", choices=DOMAINS, cli=False)
    source: str = setting(help="Hub dataset id, or a local .jsonl/.json/.csv/.parquet file or folder.",
                          short="-s", input=True)
    out: str = setting(help="Output folder (created by this run; refused if it holds anything else).",
                       short="-o")
    teacher: str = setting("replay", help="replay, a preset (deepseek-r1, deepseek-r1-local) or an engine "
                           "(hf, openai, vllm) with --model.")
    # source
    split: str = setting("train", help="Hub split.")
    subset: str | None = setting(None, help="Hub config name, e.g. metadata for OpenThoughts-114k.")
    revision: str | None = setting(None, help="Hub revision (pin a commit for reproducible data).")
    schema: str | None = setting(None, help="Force an adapter: openr1-math, openthoughts, code-tests, "
                                 "multiple-choice, numina.")
    map: dict[str, str] = setting(default_factory=dict, pairs="text",
                                  help="Column mapping, e.g. prompt=question,answer=solution (keys: prompt answer id "
                                  "options tests fn_name starter_code completion reasoning finish_reason).")
    where: dict[str, list[Any]] = setting(default_factory=dict, pairs="alternatives",
                                          metavar="COLUMN=V1|V2",
                                          help="Keep source rows whose column has one of the values, e.g. "
                                          "question_type=math-word-problem|MCQ.")
    prompt_template: str | None = setting(None, help="User prompt with a {problem} placeholder.")
    limit: int | None = setting(None, help="Take only the first N problems.", ge=1)
    # teacher
    engine: str | None = setting(None, help="Run a preset on another engine (e.g. vllm).")
    model: str | None = setting(None, help="Teacher model (overrides the preset's).")
    base_url: str | None = setting(None, help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str | None = setting(None, help="Environment variable holding the API key (default: the "
                                      "preset's, else OPENAI_API_KEY; may be unset for a loopback server).")
    teacher_options: dict[str, Any] = setting(default_factory=dict, flag="--engine-option", pairs="yaml",
                                              aliases=("--teacher-option", "--engine-opt"),
                                              help="Engine option KEY=VALUE, e.g. concurrency=32; repeatable.")
    n_samples: int = setting(1, flag="--n", aliases=("--n-samples",), ge=1,
                             help="Teacher samples per problem.")
    temperature: float | None = setting(None, help="Teacher temperature (preset default otherwise).", ge=0)
    top_p: float | None = setting(None, flag="--top-p", help="Teacher top-p.", gt=0, le=1)
    max_new_tokens: int | None = setting(None, flag="--max-tokens", aliases=("--max-new-tokens",), ge=1,
                                         help="Teacher max tokens per completion.")
    seed: int = setting(0, help="Sampling seed.")
    # verification and filters
    workers: int | None = setting(None, help="Verification processes (default: all CPUs).", ge=1)
    executor: str = setting("local", choices=EXECUTORS,
                            help="Where generation and verification run: local, or ray (a Ray cluster; "
                            "pip install 'branchmerge[ray]').")
    ray_address: str | None = setting(None, help="Ray cluster address (default: join this machine's cluster, "
                                      "else start a local one).")
    require_correct: bool = setting(True, help="Keep only verified-correct rows (--no-require-correct: keep "
                                    "rows whatever their verdict, or without tests; the other filters still apply).")
    source_verdict: str | None = setting(None, metavar="COLUMN",
                                         help="Take each completion's verdict from this source column (e.g. "
                                         "correctness_math_verify) instead of ours; disagreements are counted.")
    max_repeat_lines: int = setting(20, help="Reject completions repeating a line this often.", ge=1, cli=False)
    min_tail_compression: float = setting(0.08, help="Reject completions whose tail compresses below this.",
                                          ge=0, le=1, cli=False)
    max_tokens_length: int | None = setting(None, ge=1,
                                            help="Drop examples longer than this in student tokens (TinyR1: 16384).")
    student_tokenizer: str | None = setting(None, help="Tokenizer (path or Hub id) that measures lengths.",
                                            input=True)
    chat_template: str = setting("model", help="Chat template the lengths are measured under, as train's "
                                 "chat_template: model, qwen, chatml or PATH.jinja (TinyR1: qwen).")
    dedup: bool = setting(True, help="Drop near-duplicate problems (MinHash); --no-dedup keeps them.")
    near_dup_threshold: float = setting(0.8, help="MinHash Jaccard threshold for near-duplicates.", gt=0, le=1)
    minhash_perms: int = setting(128, help="MinHash permutations.", ge=16, cli=False)
    shingle_words: int = setting(5, help="Words per MinHash shingle.", ge=1, cli=False)
    decontam: list[str] | None = setting(None, split=",",
                                         help="Benchmarks to decontaminate against, repeated or comma-separated "
                                         "(name or name=FILE; 'none' to skip) (default: the domain's).")
    decontam_ngram: int = setting(8, help="Word n-gram size of the overlap test.", ge=3)
    # selection and output
    select: str = setting("all", help="Per problem keep: first, shortest or all correct.", choices=SELECTIONS)
    max_per_problem: int | None = setting(None, help="At most K completions per problem.", ge=1)
    resume: bool = setting(False, help="Continue an interrupted run in --out.")
    overwrite: bool = setting(False, help="Replace --out if an earlier branchmerge run wrote it.")
    push_to_hub: str | None = setting(None, help="Also upload the dataset and card to this Hub dataset id.")
    license: str | None = setting(None, help="License for the card (default: the source's, if known).")

    def __post_init__(self) -> None:
        settings.validate(self)
        template_file(self.chat_template)  # a bad template is refused before any folder is made
        if self.decontam is not None:
            from branchmerge.curate.decontam import check_specs

            self.decontam = [d for d in self.decontam if d.lower() != "none"]
            check_specs(self.decontam)
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite exclude each other: continue the run, or replace it")

    @property
    def decontam_benchmarks(self) -> list[str]:
        return list(DEFAULT_DECONTAM[self.domain] if self.decontam is None else self.decontam)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return settings.as_dict(self)

    @classmethod
    def build(cls, file: str | Path | None = None, **given: Any) -> CurateConfig:
        """Defaults, then ``file`` (YAML), then ``given`` values that are not None."""
        return settings.build(cls, file, given, what="curation")
