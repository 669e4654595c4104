"""The whole method end to end: `branchmerge demo` at its smallest size (curate, train, merge, evaluate, report)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run([sys.executable, "-m", "branchmerge", "demo", "--out", str(out), "--size", "tiny"],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout


def test_every_stage_left_its_stats_and_card(demo):
    out, _ = demo
    for domain in ("math", "code", "science"):
        stats = json.loads((out / "curated" / domain / "stats.json").read_text())
        assert stats["kind"] == "curation" and stats["rows"] > 0
        verify = next(s for s in stats["funnel"] if s["stage"] == "verify")
        assert verify["dropped"] > 0  # the toy teacher is wrong on a known share: verification rejects it
        assert (out / "curated" / domain / "README.md").read_text().startswith("---\n")
        assert list((out / "curated" / domain / "rejected").glob("*.parquet"))
    for model in ("backbone", "math", "code", "science"):
        assert json.loads((out / "models" / model / "stats.json").read_text())["kind"] == "training"
        assert (out / "models" / model / "README.md").exists()
    for model in ("merge-math-science", "merged-arcee", "merged-soup"):
        assert json.loads((out / "models" / model / "stats.json").read_text())["kind"] == "merge"
        assert (out / "models" / model / "README.md").exists()
    arcee = json.loads((out / "models" / "merged-arcee" / "stats.json").read_text())
    assert [i["role"] for i in arcee["inputs"]] == ["base", "model"]
    # TinyR1's order: code kept, (math & science) fused in; paths are stored relative to the stats file
    base = out / "models" / "merged-arcee" / arcee["inputs"][0]["path"]
    assert base.resolve() == (out / "models" / "code").resolve()


def test_report_numbers_match_the_summaries(demo):
    out, stdout = demo
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "Merges versus their branches" in md and "Merges versus their branches" in html
    table = md.split("\n## ")[0]
    for model in ("backbone", "math", "code", "science", "merged-arcee", "merged-soup"):
        line = next(row for row in table.splitlines() if row.startswith(f"| **{model}**"))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        for bench, cell in zip(("demo_code", "demo_math", "demo_science"), cells, strict=True):
            summary = json.loads((out / "eval" / model / bench / "summary.json").read_text())
            pass1 = float(re.match(r"([\d.]+) ", cell).group(1))
            assert pass1 == pytest.approx(round(100 * summary["metrics"]["pass@1"], 1))
            assert str(round(summary["tokens"]["completion"]["mean"])) in cell
    assert "merged-arcee" in stdout and "report.html" in stdout


def test_a_copied_run_folder_keeps_its_links_and_resumes(demo, tmp_path):
    """Paths inside a run folder are relative: a moved copy reports the same merges and reruns nothing."""
    import shutil

    out, _ = demo
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(out, moved)
    hidden = out.with_name("hidden-original")
    out.rename(hidden)  # the original is gone while the copy is used: nothing may still point at it
    try:
        report = tmp_path / "moved-report"
        proc = subprocess.run([sys.executable, "-m", "branchmerge", "report", str(moved / "eval"),
                               *(str(p) for p in sorted((moved / "models").iterdir())), "-o", str(report)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        md = (report / "report.md").read_text()
        assert "merged-arcee" in md.split("Merges versus their branches")[1]
        rerun = subprocess.run([sys.executable, "-m", "branchmerge", "demo", "--out", str(moved), "--size", "tiny"],
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert rerun.stderr.count("skipped") >= 15  # every stage already done in the copy
    finally:
        hidden.rename(out)
