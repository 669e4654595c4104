"""``branchmerge report``: HTML and markdown from evaluation, curation, training and merge outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "report",
        help=(
            "Build a self-contained HTML report and a markdown summary from result directories: "
            "evaluation results (DIR/<bench>/summary.json or the parent DIR), curation, training and "
            "merge outputs (stats.json + README.md card).\n\n"
            "Example: branchmerge report runs/eval/merged runs/eval/math runs/curate/math "
            "--html report.html --md report.md --reference paper"
        ),
    )
    def report(
        dirs: Annotated[list[Path], typer.Argument(help="Result directories, any mix of kinds.")],
        html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
        md: Annotated[Path | None, typer.Option("--md", help="Write the markdown summary here.")] = None,
        title: Annotated[str, typer.Option("--title", help="Report title.")] = "branchmerge report",
        reference: Annotated[
            list[str] | None,
            typer.Option("--reference", help="Add published rows: 'paper' (Table 1), 'paper-table2'. Repeatable."),
        ] = None,
        show_gpqa: Annotated[
            bool, typer.Option("--show-gpqa", help="Show GPQA question text (redacted by default: its licence).")
        ] = False,
        samples_per_model: Annotated[
            int, typer.Option("--samples-per-model", min=0, help="Samples shown per model and problem.")
        ] = 2,
    ) -> None:
        from branchmerge.console import err
        from branchmerge.report.build import build_report
        from branchmerge.report.html import Options

        inputs = build_report(
            dirs, html_path=html, md_path=md, title=title, references=reference or [],
            options=Options(title=title, show_gpqa=show_gpqa, samples_per_model=samples_per_model),
        )
        written = " and ".join(str(p) for p in (html, md) if p is not None)
        err.print(
            f"report: {len(inputs.evaluations)} evaluation result(s), {len(inputs.stages)} stage output(s) "
            f"-> {written}",
            highlight=False,
        )
