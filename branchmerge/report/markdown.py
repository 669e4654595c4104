"""The markdown report: the paper's Table 1 layout plus the numbers needed to trust each cell.

It renders on GitHub: plain pipe tables, and every piece of user-controlled text has pipes,
newlines and HTML metacharacters neutralised so a model name cannot break the table.
"""

from __future__ import annotations

from branchmerge.report import stages
from branchmerge.report.compare import compare, problem_rates
from branchmerge.report.load import Inputs, StageResult
from branchmerge.report.merges import merge_statements
from branchmerge.report.reference import NOTE
from branchmerge.report.table import Summary, cell_text, detail


def md_escape(text: object) -> str:
    """Text safe inside a GitHub table cell: no HTML, no pipes, one line."""
    text = " ".join(str(text).split())
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


SIGNATURE = "<!-- written by branchmerge report -->"


def render_markdown(title: str, summary: Summary, inputs: Inputs) -> str:
    lines = [f"# {md_escape(title)}", ""]
    if summary.columns:
        lines += _main_table(summary) + [""]
        statements = merge_statements(summary, inputs)
        if statements:
            lines += ["## Merges versus their branches", "", *[f"- {md_escape(s)}" for s in statements], ""]
        lines += _detail_table(summary) + [""]
        lines += _comparisons(summary)
    if inputs.stages:
        lines += ["## Stage outputs", ""] + [f"- {_stage_line(stage)}" for stage in inputs.stages] + [""]
    return "\n".join([*lines, SIGNATURE, ""])


def _comparisons(summary: Summary) -> list[str]:
    rows = []
    for column in summary.columns:
        results = summary.results(column)
        rates = {r.model: problem_rates(r) for r in results}
        for i, a in enumerate(results):
            for b in results[i + 1:]:
                p = compare(a.model, rates[a.model], b.model, rates[b.model])
                rows.append([md_escape(column.label), md_escape(a.model), md_escape(b.model), str(p.common),
                             f"{100 * p.delta:+.1f}", f"[{100 * p.ci[0]:+.1f}, {100 * p.ci[1]:+.1f}]",
                             str(len(p.gained)), str(len(p.lost))])
    if not rows:
        return []
    header = ["Benchmark", "A", "B", "Common problems", "Δ pass@1 (A−B)", "95% CI (paired)", "Solved by A only",
              "Solved by B only"]
    return ["## Model comparisons", "",
            "Solved = at least half of a problem's samples correct; the CI is a paired bootstrap over problems.",
            "", *_table(header, rows), ""]


def _stage_line(stage: StageResult) -> str:
    st = stage.stats
    facts: list[str] = []
    if stage.kind == "curation":
        funnel = stages.funnel(st)
        if funnel:
            facts.append(" → ".join(f"{name} {n:g}" for name, n in funnel))
        facts += [f"{reason}: {n:g}" for reason, n in stages.reasons(st)[:3]]
    elif stage.kind == "training":
        facts += [f"base_model {st.base_model}", f"hparams {st.hparams}", f"steps {st.steps}",
                  f"tokens_seen {st.tokens_seen}", f"final_loss {st.final_loss}", f"wall_time_s {st.wall_time_s}"]
    else:
        facts += [f"method {st.method}", f"mode {st.mode}", f"time_s {st.time_s}"]
    detail = f" ({md_escape('; '.join(facts))})" if facts else ""
    return f"{stage.kind} `{md_escape(stage.path)}`: {md_escape(stage.name)}{detail}"


def _main_table(summary: Summary) -> list[str]:
    header = ["Model"] + [md_escape(c.label) for c in summary.columns]
    rows = []
    for row in summary.rows:
        label = f"*{md_escape(row.label)}* (published)" if row.published else f"**{md_escape(row.label)}**"
        rows.append([label] + [cell_text(row.cells.get(c.key)) for c in summary.columns])
    lines = [
        "Pass@1 (%) with the mean output length in tokens, reasoning included, in parentheses.",
        "",
        *_table(header, rows),
    ]
    lines += [line for note in summary.version_notes() for line in ("", f"> **Note:** {md_escape(note)}")]
    citations = sorted({row.citation for row in summary.rows if row.published})
    if citations:
        lines += ["", f"*(published)*: {'; '.join(citations)}. {NOTE}"]
    return lines


def _detail_table(summary: Summary) -> list[str]:
    header = [
        "Benchmark", "Version", "Model", "n", "Problems", "Pass@1", "± SE", "95% CI", "cons@n",
        "Mean tok", "Median", "p90", "Max tokens", "Truncated %", "Unparsed %", "Strict / lenient",
    ]
    rows = []
    for column in summary.columns:
        for row in summary.measured():
            result = row.cells.get(column.key)
            if result is None:
                continue
            d = detail(result)  # type: ignore[arg-type]
            rows.append([
                md_escape(column.label), md_escape(d["version"]), md_escape(row.label), str(d["n"]),
                str(d["problems"]), d["pass1"], d["se"], d["ci"], d["cons"], d["mean"], d["median"],
                d["p90"], d["max_tokens"], d["truncated"], d["unparsed"], d["strict_lenient"],
            ])
    return [
        "## Per benchmark",
        "",
        "n is the number of samples per problem; the CI is a bootstrap over problems; tokens count "
        "generated tokens of every sample, wrong and truncated ones included; strict / lenient is the "
        "multiple-choice pass@1 under both answer extractions.",
        "",
        *_table(header, rows),
    ]
