"""The markdown report: the paper's Table 1 layout plus the numbers needed to trust each cell.

It renders on GitHub: plain pipe tables, and every piece of user-controlled text has pipes,
newlines and HTML metacharacters neutralised so a model name cannot break the table.
"""

from __future__ import annotations

from branchmerge.report.load import Inputs
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


def render_markdown(title: str, summary: Summary, inputs: Inputs) -> str:
    lines = [f"# {md_escape(title)}", ""]
    if summary.columns:
        lines += _main_table(summary) + [""]
        lines += _detail_table(summary) + [""]
    for stage in inputs.stages:
        lines += [f"- {stage.kind} output `{md_escape(stage.path)}`: {md_escape(stage.name)}"]
    if inputs.stages:
        lines.append("")
    return "\n".join(lines)


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
    citations = sorted({row.citation for row in summary.rows if row.published})
    if citations:
        lines += ["", f"*(published)*: {'; '.join(citations)}. {NOTE}"]
    return lines


def _detail_table(summary: Summary) -> list[str]:
    header = [
        "Benchmark", "Version", "Model", "n", "Problems", "Pass@1", "± SE", "95% CI", "cons@n",
        "Mean tok", "Median", "p90", "Max tokens", "Truncated %", "Unparsed %",
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
                d["p90"], d["max_tokens"], d["truncated"], d["unparsed"],
            ])
    return [
        "## Per benchmark",
        "",
        "n is the number of samples per problem; the CI is a bootstrap over problems; tokens count "
        "generated tokens of every sample, wrong and truncated ones included.",
        "",
        *_table(header, rows),
    ]
