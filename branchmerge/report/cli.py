"""``branchmerge report``: HTML and markdown from evaluation, curation, training and merge outputs.

The options are generated from ``ReportConfig``'s declarations (``branchmerge.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from branchmerge import settings
from branchmerge.settings import setting

HELP = (
    "Build a self-contained HTML report and a markdown summary from result directories: "
    "evaluation results (DIR/<bench>/summary.json or the parent DIR), curation, training and "
    "merge outputs (stats.json + README.md card).\n\n"
    "Example: branchmerge report runs/eval/merged runs/eval/math runs/curate/math "
    "-o runs/report --reference paper   (writes runs/report/report.html and report.md)"
)


@dataclass
class ReportConfig:
    dirs: list[Path] = setting(argument=True, help="Result directories, any mix of kinds.", input=True)
    out: Path | None = setting(None, short="-o", help="Folder for report.html and report.md.")
    html: Path | None = setting(None, help="Write the HTML report to this file.")
    md: Path | None = setting(None, help="Write the markdown summary to this file.")
    title: str = setting("branchmerge report", help="Report title.")
    reference: list[str] = setting(default_factory=list, split=",",
                                   help="Add published rows: 'paper' (Table 1), 'paper-table2'; repeatable.")
    show_gpqa: bool = setting(False, help="Show GPQA question text (redacted by default: its licence).")
    samples_per_model: int = setting(2, ge=0, help="Samples shown per model and problem.")

    def __post_init__(self) -> None:
        settings.validate(self)
        if self.out is not None:
            if self.out.exists() and not self.out.is_dir():
                from branchmerge.errors import UserError

                raise UserError(f"--out {self.out}: is a file; give a folder (it gets report.html and report.md)")
            self.html = self.html or self.out / "report.html"
            self.md = self.md or self.out / "report.md"


def _run(cfg: ReportConfig) -> None:
    from branchmerge.console import result
    from branchmerge.report.build import build_report
    from branchmerge.report.html import Options

    inputs = build_report(
        cfg.dirs, html_path=cfg.html, md_path=cfg.md, title=cfg.title, references=cfg.reference,
        options=Options(title=cfg.title, show_gpqa=cfg.show_gpqa, samples_per_model=cfg.samples_per_model),
    )
    written = " and ".join(str(p) for p in (cfg.html, cfg.md) if p is not None)
    result(f"report: {len(inputs.evaluations)} evaluation result(s), {len(inputs.stages)} stage output(s) "
           f"-> {written}")


def register(app: typer.Typer) -> None:
    function, cls = settings.command(ReportConfig, _run, config_option=False, what="report")
    app.command("report", cls=cls, help=HELP)(function)
