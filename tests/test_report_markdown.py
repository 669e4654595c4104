"""The markdown report: the paper's Table 1 cells, CIs, n, published rows, and escaping."""

from __future__ import annotations

import json
import re
from pathlib import Path

from branchmerge.benchmarks.registry import get_spec
from branchmerge.evaluate.run import cell, summarize
from branchmerge.report.build import build_report
from branchmerge.report.table import fmt_tokens
from tests.report_helpers import EVAL, STAGES, copy_bench, edit_json, eval_dirs, summary


def _md(tmp_path: Path, dirs: list[Path], references: list[str] | None = None) -> str:
    out = tmp_path / "report.md"
    build_report(dirs, md_path=out, title="Branches | merge", references=references)
    return out.read_text()


def _row(md: str, label: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {label} "))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_table1_layout_cells_from_the_summaries(tmp_path: Path) -> None:
    md = _md(tmp_path, [*eval_dirs(), *STAGES])
    assert md.startswith("# Branches \\| merge\n")
    header = _row(md, "Model")
    assert header == ["Model", "AIME 2024", "GPQA-Diamond", "LiveCodeBench"]
    for model in ("math-branch", "science-branch", "merged"):
        expected = []
        for bench in ("aime24", "gpqa_diamond", "livecodebench"):
            s = summary(model, bench)
            expected.append(f"{100 * s['metrics']['pass@1']:.1f} ({s['tokens']['completion']['mean'] / 1000:.1f}k)")
        assert _row(md, f"**{model}**")[1:] == expected
    # the per-benchmark table carries n, the problem count, the CI and the cap for every cell
    s = summary("merged", "gpqa_diamond")
    lo, hi = s["metrics"]["pass@1_ci95"]
    line = next(line for line in md.splitlines() if line.startswith("| GPQA-Diamond | diamond-v1 | merged |"))
    detail = [c.strip() for c in line.strip("|").split(" | ")]
    assert detail[:5] == ["GPQA-Diamond", "diamond-v1", "merged", "4", "6"]
    assert detail[7] == f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    assert detail[12] == "32768"
    m = s["metrics"]
    assert detail[15] == f"{100 * m['pass@1_strict']:.1f} / {100 * m['pass@1_lenient']:.1f}"
    assert "- curation `" in md and "source 200 → generate 400 → verify 300" in md and "verify: incorrect: 90" in md
    assert "method arcee_fusion; mode compat" in md and "final_loss 1.23" in md
    # the merge against each branch, with the paired CI and the problems gained and lost
    science_vs_merged = _row(md, "AIME 2024 | science-branch | merged")
    assert science_vs_merged[3:] == ["10", "-27.5", "[-40.0, -15.0]", "0", "3"]


def test_published_rows_are_marked_and_only_fill_matching_columns(tmp_path: Path) -> None:
    md = _md(tmp_path, eval_dirs(), ["paper"])
    assert _row(md, "*TinyR1-32B-Preview* (published)")[1:] == ["78.1 (11.8k)", "65.0 (8.6k)", "61.6 (12.4k)"]
    assert _row(md, "*DeepSeek-R1-Distill-Llama-70B* (published)")[1:] == ["70.0", "65.2", "57.5"]
    assert "quoted, not measured" in md
    # a benchmark the paper has no number for gets a dash, and published rows get no detail rows
    only_math500 = copy_bench(tmp_path, "merged", "aime24", "m500")
    edit_json(only_math500 / "summary.json", bench="math500")
    md = _md(tmp_path, [only_math500], ["paper", "paper-table2"])
    assert _row(md, "*DeepSeek-R1* (published)")[1:] == ["–"]
    assert _row(md, "*Merge (Math & Science) & Coding* (published)")[1:] == ["–"]
    assert sum(line.startswith("| MATH-500 |") for line in md.splitlines()) == 1


def test_model_names_cannot_break_the_table_or_inject_html(tmp_path: Path) -> None:
    bench = copy_bench(tmp_path, "merged", "aime24")
    edit_json(bench / "summary.json", model="evil|<img src=x onerror=alert(1)>\nname")
    md = _md(tmp_path, [bench])
    line = next(line for line in md.splitlines() if "evil" in line)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt; name" in line
    assert line.count(" | ") == 1 and "evil\\|" in line


def test_cell_matches_the_evaluate_stage_for_its_own_summary(tmp_path: Path) -> None:
    """Contract with issue 7: a summary.json written by `evaluate` gives the same cell in the report."""
    rows = [json.loads(line) for line in (EVAL / "merged" / "aime24" / "samples.jsonl").read_text().splitlines()]
    config = {"bench_version": "v-eval", "model": "from-evaluate", "model_path": "/m",
              "sampling": {"n": 4, "max_tokens": 32768}}
    produced = summarize(get_spec("aime24"), rows, config)
    bench = tmp_path / "aime24"
    bench.mkdir()
    (bench / "summary.json").write_text(json.dumps(produced))
    (bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = _md(tmp_path, [tmp_path])
    assert _row(md, "**from-evaluate**")[1] == cell(produced)
    assert re.search(r"\| AIME 2024 \| v-eval \| from-evaluate \| 4 \| 10 \|", md)


def test_token_format_follows_the_paper() -> None:
    assert [fmt_tokens(v) for v in (11800, 11849, 950, 0)] == ["11.8k", "11.8k", "950", "0"]
