"""The Hugging Face dataset card of a curation output directory.

Everything on the card comes from ``stats.json``, so ``write_card(DIR)`` regenerates the card of
any existing output (``branchmerge curate card DIR``) and the numbers cannot drift from the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from branchmerge.atomic import write_text
from branchmerge.cards import dataset_card
from branchmerge.contracts import CurationStats
from branchmerge.curate.config import CurateConfig

KNOWN_LICENSES = {
    "open-r1/openr1-math-220k": "apache-2.0",
    "open-thoughts/openthoughts-114k": "apache-2.0",
    "simplescaling/data_ablation_full59k": "apache-2.0",
    "simplescaling/s1k": "apache-2.0",
    "ai-mo/numinamath-1.5": "apache-2.0",
    "baai/taco": "apache-2.0",
    "codeparrot/apps": "mit",
}
ADAPTER_NAMES = {
    "openr1-math": "OpenR1-Math-220k (replayed DeepSeek-R1 generations)",
    "openthoughts": "OpenThoughts-114k",
    "code-tests": "code problems with input/output tests (TACO/APPS/Codeforces layout)",
    "multiple-choice": "multiple-choice science questions",
    "numina": "NuminaMath-style problems with answers",
    "map": "columns mapped with --map",
}
STAGE_TEXT = {
    "source": "source rows turned into problems (malformed rows, --where, other domains dropped)",
    "generate": "teacher completions (problems the teacher left unanswered dropped)",
    "verify": "verified by branchmerge.verify (only correct kept unless require_correct is off)",
    "format": "one closed think block, non-empty reasoning and answer, not truncated, no runaway repetition",
    "length": "length limit in the student's tokens",
    "dedup": "exact and MinHash near-duplicate problems removed",
    "decontam": "problems sharing an n-gram with an evaluation benchmark removed",
    "select": "selection per problem",
}


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def _license(stats: CurationStats) -> str:
    return str(stats.config.get("license") or KNOWN_LICENSES.get(stats.source.name.lower(), "other"))


def _hub_id(name: str) -> str | None:
    return name if name.count("/") == 1 and not Path(name).exists() else None


def card_meta(domain: str, rows: int, license_: str, source: str, pretty_name: str,
              extra_tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``DatasetCardData`` of a curated dataset (measured or planned)."""
    return {
        "license": license_,
        "language": ["en"],
        "task_categories": ["text-generation", "question-answering"],
        "size_categories": [size_category(rows)],
        "tags": ["reasoning", "distillation", "branch-merge", domain, "synthetic", *extra_tags],
        "pretty_name": pretty_name,
        "source_datasets": [source] if _hub_id(source) else None,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    }


def _funnel_table(stats: CurationStats) -> str:
    lines = ["| stage | what | in | out | dropped | reasons |", "|---|---|---:|---:|---:|---|"]
    for s in stats.funnel:
        reasons = ", ".join(f"{k}: {v}" for k, v in s.reasons.items()) or "-"
        lines.append(f"| {s.stage} | {STAGE_TEXT.get(s.stage, '')} ({s.unit}) | {s.n_in} | {s.n_out} "
                     f"| {s.dropped} | {reasons} |")
    return "\n".join(lines)


def _length_section(lengths: dict[str, Any]) -> str:
    if not lengths.get("count"):
        return "No token counts are available (no student tokenizer given and the teacher reported none)."
    p = lengths["percentiles"]
    lines = [f"Measured in {lengths['measure']}: mean {lengths['mean']}, min {lengths['min']}, "
             f"median {p['p50']:.0f}, p90 {p['p90']:.0f}, p99 {p['p99']:.0f}, max {lengths['max']} "
             f"({lengths['total']} tokens in all).", "", "| tokens | rows | |", "|---|---:|---|"]
    edges, counts = lengths["histogram"]["edges"], lengths["histogram"]["counts"]
    top = max(counts) or 1
    for lo, hi, c in zip(edges, edges[1:], counts, strict=False):
        lines.append(f"| {lo:.0f}-{hi:.0f} | {c} | {'█' * round(20 * c / top)} |")
    return "\n".join(lines)


def render_card(stats: CurationStats) -> str:
    teacher, cfg, src = stats.teacher, stats.config, stats.source
    if stats.sampling:
        sampling_text = ", ".join(f"{k}={v}" for k, v in stats.sampling.items() if v not in (None, [], ""))
    else:
        sampling_text = teacher.get("note", "as in the source dataset")
    tokens = stats.teacher_tokens or {}
    dedup = stats.dedup or {}
    decon = stats.decontamination or {}
    labels = stats.source_labels
    where = ", ".join(f"{k} in {v}" for k, v in src.where.items()) or "none"
    selection = stats.selection
    parts = [
        f"# branchmerge {stats.domain} dataset",
        "",
        f"{stats.rows} verified {stats.domain} reasoning traces for {stats.problems} problems, curated with "
        "`branchmerge curate` for Branch-Merge distillation (one SFT branch per domain, TinyR1-32B-Preview). "
        "Every kept row passed the stages below; every dropped row is in `rejected/` with its stage and reason.",
        "",
        "## Source",
        "",
        f"- Dataset: `{src.name}` ({src.kind}; read as {ADAPTER_NAMES.get(src.adapter, src.adapter)})"
        + (f", split `{src.split}`" if src.split else "")
        + (f", subset `{src.subset}`" if src.subset else "")
        + (f", revision `{src.revision}`" if src.revision else ""),
        f"- Row filter (--where): {where}",
        "",
        "## Teacher and sampling",
        "",
        f"- Teacher: `{teacher['name']}` (engine `{teacher['engine']}`, model `{teacher['model']}`)",
        f"- Sampling: {sampling_text}",
        f"- Teacher tokens spent: {tokens.get('prompt', 0)} prompt + {tokens.get('completion', 0)} completion "
        f"({tokens.get('rows_with_counts', 0)} of {tokens.get('rows', 0)} completions report counts)",
    ]
    if labels:
        parts.append("- Agreement of our verifier with the source's own correctness labels: "
                     + ", ".join(f"{k}: {v}" for k, v in labels.items()))
    parts += [
        "",
        "## Filters",
        "",
        _funnel_table(stats),
        "",
        f"- Near-duplicates: {dedup.get('method', '-')}; word {dedup.get('shingle_words')}-gram shingles, "
        f"{dedup.get('perms')} permutations in {dedup.get('bands')} bands of {dedup.get('rows_per_band')}, "
        f"Jaccard threshold {dedup.get('threshold')}.",
        f"- Decontamination: word {decon.get('ngram')}-gram overlap with "
        + (", ".join(f"{k} ({v} problems)" for k, v in (decon.get("loaded") or {}).items()) or "no benchmark")
        + ".",
        f"- Selection: `{selection['select']}`, "
        + (f"at most {selection['max_per_problem']}" if selection["max_per_problem"]
           else "every kept completion" if selection["select"] == "all" else "at most 1")
        + " per problem.",
        f"- Length limit: {cfg.get('max_tokens_length') or 'none'}"
        + (f" student tokens ({cfg.get('student_tokenizer')}, chat template applied)"
           if cfg.get("max_tokens_length") else "") + ".",
    ]
    if stats.warnings:
        parts += ["", "## Warnings", "", *[f"- **{w}**" for w in stats.warnings]]
    parts += [
        "",
        "## Length",
        "",
        _length_section(stats.token_lengths),
        "",
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("parquet", data_files="data/*.parquet", split="train")',
        'print(ds[0]["messages"])  # user prompt; assistant "<think>\\n…\\n</think>\\n\\n…answer"',
        "```",
        "",
        "Columns: `messages` (chat for SFT), `prompt`, `reasoning`, `answer`, `completion`, `reference`, "
        "`verdict`, `verdict_detail`, `meta` (JSON text), token counts, and the problem `id`/`source`.",
        "",
        "## Reproduce",
        "",
        "```",
        f"branchmerge curate {stats.domain} --teacher {cfg.get('teacher', teacher['name'])} "
        f"--source {src.name} --out DIR",
        "```",
        "",
        "The full resolved configuration is in `stats.json` (`config`).",
        "",
    ]
    meta = card_meta(stats.domain, stats.rows, _license(stats), src.name, f"branchmerge {stats.domain} curation")
    return dataset_card(meta, "\n".join(parts))


def render_planned_card(recipe: str, stage_id: str, config: CurateConfig, expected: dict[str, Any],
                        command: str) -> str:
    """The card of a dataset a recipe *will* curate: its sources, teacher, filters and the sizes the
    paper reports, clearly marked as expected. Running the stage replaces it with the measured card."""
    c = config
    license_ = c.license or KNOWN_LICENSES.get(c.source.lower(), "other")
    meta = card_meta(c.domain, int(expected.get("rows", 0)), license_, c.source, f"branchmerge {recipe} {stage_id}",
                     ("planned",))
    if c.source_verdict:
        verified = f"the source column `{c.source_verdict}` decides (our grader's verdicts are compared in stats)"
    elif c.require_correct:
        verified = "every completion verified, only correct ones kept"
    else:
        verified = "every completion verified and its verdict kept, wrong and untested ones included"
    benches = c.decontam_benchmarks
    where = ", ".join(k + "=" + "|".join(map(str, v)) for k, v in c.where.items())
    lines = [
        f"# {recipe} / {stage_id} ({c.domain}): planned dataset",
        "",
        "**Expected, not measured.** This card describes what the recipe stage will produce; the sizes are the "
        "ones the TinyR1-32B-Preview paper reports. Running the stage writes the measured card (funnel counts, "
        "length histogram, teacher tokens) in its output directory, and `branchmerge curate card DIR` rewrites it.",
        "",
        "## Source",
        "",
        f"- Dataset: `{c.source}`" + (f", subset `{c.subset}`" if c.subset else "")
        + (f", split `{c.split}`" if c.split else ""),
        f"- Licence: {license_}",
        f"- Row filter (--where): {where or 'none'}",
        f"- Column mapping (--map): {', '.join(f'{k}={v}' for k, v in c.map.items()) or 'recognised from the columns'}",
        "",
        "## Teacher",
        "",
        f"- `{c.teacher}`" + (" (stored DeepSeek-R1 generations replayed; no new generation)" if c.teacher == "replay"
                              else f", {c.n_samples} sample(s) per problem"),
        "",
        "## Filters",
        "",
        f"- Verification: {verified}.",
        "- Format: exactly one closed think block, non-empty answer, not truncated, no runaway repetition.",
        f"- Length: at most {c.max_tokens_length or 'no limit'} tokens of "
        f"`{c.student_tokenizer or 'the student'}` with its chat template.",
        f"- Near-duplicates: MinHash, Jaccard threshold {c.near_dup_threshold}." if c.dedup
        else "- Near-duplicates: kept (--no-dedup).",
        f"- Decontamination: word {c.decontam_ngram}-gram overlap with {', '.join(benches)}." if benches
        else "- Decontamination: none.",
        f"- Selection: `{c.select}`" + (f", at most {c.max_per_problem} per problem" if c.max_per_problem else "") + ".",
        "",
        "## Expected size",
        "",
        *[f"- {k}: {v}" for k, v in expected.items()],
        "",
        "## Reproduce",
        "",
        "```",
        f"branchmerge {command}",
        "```",
        "",
    ]
    return dataset_card(meta, "\n".join(lines))


def write_card(out_dir: str | Path) -> Path:
    """(Re)write ``README.md`` of a curation output directory from its ``stats.json``."""
    out_dir = Path(out_dir)
    path = out_dir / "README.md"
    write_text(path, render_card(CurationStats.read(out_dir)))
    return path
