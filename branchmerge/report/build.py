"""Load result directories and write the HTML and markdown reports."""

from __future__ import annotations

from pathlib import Path

from branchmerge.atomic import write_text
from branchmerge.console import log
from branchmerge.errors import UserError
from branchmerge.outdir import claim_file
from branchmerge.report.html import Options, render_html
from branchmerge.report.load import Inputs, load_dirs
from branchmerge.report.markdown import SIGNATURE as MD_SIGNATURE
from branchmerge.report.markdown import render_markdown
from branchmerge.report.reference import published_rows
from branchmerge.report.table import build_summary

HTML_SIGNATURE = '<meta name="generator" content="branchmerge'


def build_report(
    dirs: list[Path],
    html_path: Path | None = None,
    md_path: Path | None = None,
    title: str = "branchmerge report",
    references: list[str] | None = None,
    options: Options | None = None,
) -> Inputs:
    """Write whichever of ``html_path`` and ``md_path`` is given; return what was loaded."""
    if html_path is None and md_path is None:
        raise UserError("nothing to write: give --out DIR, --html FILE, --md FILE or a mix")
    if html_path is not None:
        claim_file(html_path, HTML_SIGNATURE, "--html")
    if md_path is not None:
        claim_file(md_path, MD_SIGNATURE, "--md")
    published = published_rows(references or [])
    options = options or Options(title=title)
    inputs = load_dirs(dirs, texts_per_verdict=options.samples_per_model)
    summary = build_summary(inputs.evaluations, published)
    for note in summary.version_notes():
        log.warning(note)
    if md_path is not None:
        write_text(md_path, render_markdown(title, summary, inputs))
    if html_path is not None:
        write_text(html_path, render_html(summary, inputs, options))
    return inputs
