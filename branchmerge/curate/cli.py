"""``branchmerge curate {math,code,science}`` and ``branchmerge curate card``.

Only typer and the stdlib at module level: the pipeline (numpy, datasets, transformers) is
imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

EXAMPLES = {
    "math": (
        "branchmerge curate math --teacher replay --source open-r1/OpenR1-Math-220k "
        "--where question_type=math-word-problem --select first --out runs/curated/math"
    ),
    "code": (
        "branchmerge curate code --teacher replay --source open-thoughts/OpenThoughts-114k --subset metadata "
        "--student-tokenizer deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --max-tokens-length 16384 "
        "--out runs/curated/code"
    ),
    "science": (
        "branchmerge curate science --teacher deepseek-r1 --source simplescaling/s1K --map prompt=question "
        "--no-require-correct --out runs/curated/science"
    ),
}
HELP = {
    "math": "Curate verified math traces (OpenR1-Math-220k replay, NuminaMath-style problems + a teacher).",
    "code": "Curate code traces verified against tests in the sandbox (OpenThoughts, TACO/APPS/Codeforces).",
    "science": "Curate science traces (multiple choice verified by letter; open questions kept unverified).",
}

Opt = typer.Option


def _make(domain: str):  # noqa: C901 (one flag per setting is the point)
    def command(
        source: Annotated[str | None, Opt("--source", "-s", help="Hub dataset id, or a local .jsonl/.parquet file or folder.")] = None,
        out: Annotated[str | None, Opt("--out", "-o", help="Output directory (owned by this run).")] = None,
        teacher: Annotated[str | None, Opt(help="replay, a preset (deepseek-r1, deepseek-r1-local) or an engine (hf, openai, vllm) with --model.")] = None,
        config: Annotated[Path | None, Opt("--config", help="YAML file with any of these settings (flags override it).")] = None,
        split: Annotated[str | None, Opt(help="Hub split \\[default: train].")] = None,
        subset: Annotated[str | None, Opt(help="Hub config name, e.g. metadata for OpenThoughts-114k.")] = None,
        revision: Annotated[str | None, Opt(help="Hub revision (pin a commit for reproducible data).")] = None,
        schema: Annotated[str | None, Opt(help="Force an adapter: openr1-math, openthoughts, code-tests, multiple-choice, numina.")] = None,
        map_: Annotated[list[str] | None, Opt("--map", help="Column mapping, e.g. prompt=question,answer=solution (keys: prompt answer id options tests fn_name starter_code completion reasoning finish_reason).")] = None,
        where: Annotated[list[str] | None, Opt(help="Keep source rows whose column has one of the values: question_type=math-word-problem|MCQ.")] = None,
        prompt_template: Annotated[str | None, Opt(help="User prompt with a {problem} placeholder.")] = None,
        limit: Annotated[int | None, Opt(help="Take only the first N problems.")] = None,
        n_samples: Annotated[int | None, Opt("--n-samples", help="Teacher samples per problem \\[default: 1].")] = None,
        engine: Annotated[str | None, Opt(help="Run a preset on another engine (e.g. vllm).")] = None,
        model: Annotated[str | None, Opt(help="Teacher model (overrides the preset's).")] = None,
        base_url: Annotated[str | None, Opt(help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")] = None,
        teacher_option: Annotated[list[str] | None, Opt(help="Engine option key=value, e.g. concurrency=32.")] = None,
        temperature: Annotated[float | None, Opt(help="Teacher temperature (preset default otherwise).")] = None,
        top_p: Annotated[float | None, Opt(help="Teacher top_p.")] = None,
        max_new_tokens: Annotated[int | None, Opt(help="Teacher max tokens per completion.")] = None,
        seed: Annotated[int | None, Opt(help="Sampling seed.")] = None,
        workers: Annotated[int | None, Opt(help="Verification processes \\[default: all CPUs].")] = None,
        require_correct: Annotated[bool | None, Opt("--require-correct/--no-require-correct", help="Keep only verified-correct rows \\[default: on].")] = None,
        max_tokens_length: Annotated[int | None, Opt(help="Drop examples longer than this in student tokens (TinyR1 code: 16384).")] = None,
        student_tokenizer: Annotated[str | None, Opt(help="Tokenizer (path or Hub id) that measures lengths.")] = None,
        near_dup_threshold: Annotated[float | None, Opt(help="MinHash Jaccard threshold for near-duplicates \\[default: 0.8].")] = None,
        decontam: Annotated[list[str] | None, Opt(help="Benchmarks to decontaminate against, repeated or comma-separated (name or name=FILE; 'none' to skip) \\[default: the domain's].")] = None,
        decontam_ngram: Annotated[int | None, Opt(help="Word n-gram size of the overlap test \\[default: 8].")] = None,
        select: Annotated[str | None, Opt(help="Per problem keep: first, shortest or all correct \\[default: all].")] = None,
        max_per_problem: Annotated[int | None, Opt(help="At most K completions per problem.")] = None,
        resume: Annotated[bool | None, Opt("--resume/--no-resume", help="Continue an interrupted run in --out.")] = None,
        push_to_hub: Annotated[str | None, Opt(help="Also upload the dataset and card to this Hub dataset id.")] = None,
        license_: Annotated[str | None, Opt("--license", help="License for the card (default: the source's, if known).")] = None,
    ) -> None:
        from branchmerge.console import out as stdout
        from branchmerge.curate.config import CurateConfig, parse_pairs
        from branchmerge.curate.pipeline import curate

        given: dict[str, Any] = {
            "domain": domain, "source": source, "out": out, "teacher": teacher, "split": split, "subset": subset,
            "revision": revision, "schema": schema, "prompt_template": prompt_template, "limit": limit,
            "n_samples": n_samples, "engine": engine, "model": model, "base_url": base_url,
            "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "seed": seed,
            "workers": workers, "require_correct": require_correct, "max_tokens_length": max_tokens_length,
            "student_tokenizer": student_tokenizer, "near_dup_threshold": near_dup_threshold,
            "decontam_ngram": decontam_ngram, "select": select, "max_per_problem": max_per_problem,
            "resume": resume, "push_to_hub": push_to_hub, "license": license_,
            "map": parse_pairs(map_, "--map") or None,
            "where": _where(where) or None,
            "teacher_options": _typed(parse_pairs(teacher_option, "--teacher-option")) or None,
            "decontam": None if decontam is None else [
                d.strip() for item in decontam for d in item.split(",") if d.strip() and d.strip().lower() != "none"],
        }
        cfg = CurateConfig.build(config, **given)
        path = curate(cfg)
        stdout.print(str(path))

    command.__doc__ = f"{HELP[domain]}\n\nExample: {EXAMPLES[domain]}"
    return command


def _where(items: list[str] | None) -> dict[str, list[Any]]:
    from branchmerge.curate.config import parse_pairs

    return {k: v.split("|") for k, v in parse_pairs(items, "--where").items()}


def _typed(pairs: dict[str, str]) -> dict[str, Any]:
    import yaml

    return {k: yaml.safe_load(v) for k, v in pairs.items()}


def card(
    directory: Annotated[Path, typer.Argument(help="A curation output directory (with stats.json), or with "
                                                "--recipe the folder for the planned cards.")],
    recipe: Annotated[str | None, typer.Option(help="Write the planned cards of a recipe's curation stages.")] = None,
) -> None:
    """Rewrite the dataset card (README.md) of a curation output from its stats.json.

    Example: branchmerge curate card runs/curated/math

    Example (planned cards of a recipe, as in data_cards/): branchmerge curate card data_cards --recipe tinyr1
    """
    from branchmerge.console import out as stdout
    from branchmerge.curate.card import write_card
    from branchmerge.pipeline.cards import write_planned_cards

    paths = write_planned_cards(recipe, directory) if recipe else [write_card(directory)]
    for path in paths:
        stdout.print(str(path))


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Curate verified teacher generations into a domain dataset with a data card.\n\n"
        f"Example: {EXAMPLES['math']}",
        no_args_is_help=True,
    )
    for domain in ("math", "code", "science"):
        group.command(domain, help=_make(domain).__doc__)(_make(domain))
    group.command("card")(card)
    app.add_typer(group, name="curate")
