"""The HTML report as a file: self-contained, escaped, GPQA redacted, size bounded; its parts."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from branchmerge.report import charts
from branchmerge.report.breakdown import breakdowns
from branchmerge.report.build import build_report
from branchmerge.report.compare import compare, problem_rates
from branchmerge.report.html import Options
from branchmerge.report.load import load_dirs
from branchmerge.report.mdhtml import markdown_to_html
from tests.report_helpers import EVAL, STAGES, copy_bench, eval_dirs, summary


def _html(tmp_path: Path, dirs: list[Path], **options: object) -> str:
    out = tmp_path / "report.html"
    build_report(dirs, html_path=out, title="T", references=["paper"], options=Options(**options))
    return out.read_text()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _html(tmp_path_factory.mktemp("html"), [*eval_dirs(), *STAGES])


def test_self_contained_and_mobile_ready(page: str) -> None:
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert not re.search(r"<link\b|<script[^>]*\bsrc=|@import|url\(|<img\b|<iframe\b", page)
    assert not re.search(r'\bsrc="(?!data:)', page)  # nothing is fetched; links in cards are only links
    assert "@media (max-width: 600px)" in page and page.count("<svg ") >= 10
    # the one inline script is the one the Content-Security-Policy admits by hash
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_key_sections_and_numbers(page: str) -> None:
    for model in ("math-branch", "science-branch", "merged"):
        s = summary(model, "aime24")
        assert f"{100 * s['metrics']['pass@1']:.1f} ({s['tokens']['completion']['mean'] / 1000:.1f}k)" in page
    assert "78.1 (11.8k)" in page and "published" in page
    for text in ("accuracy vs mean output tokens", "pass@k", "output length", "Gained and lost problems",
                 "Per-problem grid", "Pass@1 by problem group", "Curation funnel", "Rejected rows by reason", "Training loss",
                 "Merge card", "arcee_fusion", "Kept samples: length", "student tokens", "max_tokens 32768"):
        assert text in page, text


def test_every_internal_link_has_its_target(page: str) -> None:
    targets = set(re.findall(r'\bid="([^"]+)"', page))
    links = set(re.findall(r'href="#([^"]+)"', page))
    assert links and links <= targets, sorted(links - targets)[:5]
    assert 'href="#b0-aime24-2024-v1-p9"' in page  # a gained/lost problem links to its samples


def test_all_sample_and_card_text_is_escaped(page: str) -> None:
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page
    assert not re.search(r"<[^>]*\sdata-xss=", page)


def test_gpqa_text_redacted_unless_asked(tmp_path: Path, page: str) -> None:
    for secret in ("GPQA-SECRET-QUESTION-TEXT", "alpha-option", "beta-option"):
        assert secret not in page
    assert "GPQA text redacted" in page
    assert "<dt>gold</dt>" in page and "<dt>lenient.verdict</dt>" in page  # letters and verdicts still show
    assert "options_text" not in page
    shown = _html(tmp_path, [copy_bench(tmp_path, "merged", "gpqa_diamond")], show_gpqa=True)
    assert "GPQA-SECRET-QUESTION-TEXT 0" in shown and "alpha-option" in shown and "GPQA text redacted" not in shown


def test_samples_capped_and_long_text_cut(tmp_path: Path) -> None:
    bench = copy_bench(tmp_path, "merged", "livecodebench")
    rows = [json.loads(line) for line in (bench / "samples.jsonl").read_text().splitlines()]
    rows[0]["reasoning"] = "start " + "x" * 2_000_000 + " final-words"
    (bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = _html(tmp_path, [bench], samples_per_model=1)
    assert len(page) < 400_000
    assert "characters cut from the middle" in page and "start x" in page and "final-words" in page
    assert page.count('<div class="sample ') == 5  # 5 problems, 1 sample each


def test_cli_writes_both_and_refuses_unknown_dirs(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "branchmerge", "report"]
    ok = subprocess.run([*run, str(eval_dirs()[0]), "--html", str(tmp_path / "r.html"), "--md",
                         str(tmp_path / "r.md"), "--title", "CLI"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "r.md").read_text().startswith("# CLI") and "<!DOCTYPE html>" in (tmp_path / "r.html").read_text()
    bad = subprocess.run([*run, str(tmp_path), "--md", str(tmp_path / "x.md")], capture_output=True, text=True)
    assert bad.returncode == 2 and "holds neither summary.json nor stats.json" in bad.stderr
    none = subprocess.run([*run, str(eval_dirs()[0])], capture_output=True, text=True)
    assert none.returncode == 2 and "nothing to write" in none.stderr
    ref = subprocess.run([*run, str(eval_dirs()[0]), "--md", str(tmp_path / "x.md"), "--reference", "papr"],
                         capture_output=True, text=True)
    assert ref.returncode == 2 and "unknown reference 'papr'" in ref.stderr


def test_card_markdown_is_rendered_safely() -> None:
    out = str(markdown_to_html(
        "---\nlicense: mit\n---\n# Title <b>x</b>\n\nSome **bold** and `a<b` [ok](https://x.org/a?b=1&c=2) "
        "[bad](javascript:alert(1))\n\n| a | b |\n|---|---|\n| 1 | <i>2</i> |\n\n- one\n- two\n\n"
        "```\n<script>alert(1)</script>\n```\n<script>alert(2)</script>\n"))
    assert '<pre class="front-matter">license: mit</pre>' in out
    assert "<h3>Title &lt;b&gt;x&lt;/b&gt;</h3>" in out
    assert "<strong>bold</strong>" in out and "<code>a&lt;b</code>" in out
    assert '<a href="https://x.org/a?b=1&amp;c=2" rel="noopener noreferrer">ok</a>' in out
    assert "javascript:" not in out.split("[bad]")[0] and 'href="javascript' not in out
    assert "<td>&lt;i&gt;2&lt;/i&gt;</td>" in out and "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in out
    assert "<script>" not in out and out.count("&lt;script&gt;") == 2


def test_chart_geometry() -> None:
    assert charts.nice_ticks(0, 32768, 5) == [0, 10000, 20000, 30000, 40000]
    assert charts.nice_ticks(37.5, 66.7, 5)[0] <= 37.5 and charts.nice_ticks(37.5, 66.7, 5)[-1] >= 66.7
    values = {"correct": [100, 200, 32768], "incorrect": [5000] * 4}
    chart = charts.histogram("h", values, {"correct": "g", "incorrect": "r"}, cap=32768)
    counted = {"correct": 0, "incorrect": 0}
    for rect in chart.rects:
        key, rest = rect["title"].split(": ", 1)
        counted[key] += int(rest.split()[0])
        assert chart.top <= rect["y"] <= chart.bottom and rect["x"] + rect["w"] <= chart.right + 1
    assert counted == {"correct": 3, "incorrect": 4}
    short = charts.histogram("h", {"all": [900, 1200]}, {"all": "g"}, cap=32768)
    assert max(r["x"] + r["w"] for r in short.rects) > short.right - 40  # the axis ends at the data
    assert "max_tokens 32768 (off the chart)" in short.texts[0]["text"]
    scatter = charts.scatter("s", [{"label": "a", "x": 9600, "y": 79.8, "color": "c"},
                                   {"label": "b", "x": 9600, "y": 79.0, "color": "c"}], "x", "y")
    ys = [t["y"] for t in scatter.texts]
    assert abs(ys[0] - ys[1]) >= 13  # overlapping labels are pushed apart


def test_pass1_by_problem_group() -> None:
    inputs = load_dirs([EVAL / m / "livecodebench" for m in ("merged", "math-branch")] +
                       [EVAL / "merged" / "gpqa_diamond"])
    lcb, gpqa = inputs.evaluations[:2], inputs.evaluations[2:]
    (difficulty,) = breakdowns(lcb)  # platform has one value and contest_date one per problem: no table
    assert difficulty["key"] == "difficulty"
    rows = {row["value"]: row for row in difficulty["rows"]}
    assert {v: r["problems"] for v, r in rows.items()} == {"easy": 2, "medium": 2, "hard": 1}
    merged = problem_rates(lcb[0])
    expected = sum(merged[p][0] / merged[p][1] for p in ("livecodebench-0", "livecodebench-3")) / 2
    assert rows["easy"]["pass1"]["merged"] == pytest.approx(expected)
    assert [b["key"] for b in breakdowns(gpqa)] == ["domain"]  # the per-problem "record" id is no group


def test_gained_and_lost_problems() -> None:
    a = {"p1": (4, 4), "p2": (0, 4), "p3": (2, 4), "p4": (1, 4)}
    b = {"p1": (0, 4), "p2": (4, 4), "p3": (2, 4), "only-b": (4, 4)}
    pair = compare("merged", a, "branch", b)
    assert (pair.gained, pair.lost, pair.common) == (["p1"], ["p2"], 3)
    assert pair.delta == pytest.approx(0.0) and pair.ci[0] < 0 < pair.ci[1]
