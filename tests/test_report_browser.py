"""The HTML report in real headless Chromium (Debian's ``chromium``; .ci/run installs it).

Console output is read from Chromium's own log (``--enable-logging=stderr``: every console message
and uncaught error becomes an ``INFO:CONSOLE`` line); ``--dump-dom`` gives the DOM after scripts
ran; ``--screenshot`` renders the page at laptop and phone widths.
"""

from __future__ import annotations

import html
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from branchmerge.report.build import build_report
from branchmerge.report.html import Options
from tests.report_helpers import STAGES, eval_dirs, summary

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="SKIPPED LOUDLY: Debian's chromium is not installed (apt-get install chromium), so the report "
    "was not checked in a real browser",
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium(page: Path, profile: Path, *args: str) -> tuple[str, list[str]]:
    """Run Chromium on ``page``; return stdout and the console messages it logged."""
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report.html"
    build_report([*eval_dirs(), *STAGES], html_path=out, title="Branch-Merge report", references=["paper"],
                 options=Options(title="Branch-Merge report"))
    return out


def test_the_console_check_catches_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom'); missingFunction();</script>")
    _, console = chromium(bad, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console) and any("missingFunction" in line for line in console)


def test_renders_without_console_errors_and_shows_the_numbers(report: Path, tmp_path: Path) -> None:
    dom, console = chromium(report, tmp_path / "profile", "--dump-dom")
    assert console == [], console
    assert 'data-js="ready"' in dom  # our script ran (the CSP admits it by hash)...
    assert not re.search(r"<[^>]*\sdata-xss=", dom)  # ...and no injected one did
    assert "data-xss" not in re.search(r"<body[^>]*>", dom).group(0)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    for model in ("math-branch", "science-branch", "merged"):
        for bench in ("aime24", "gpqa_diamond", "livecodebench"):
            s = summary(model, bench)
            cell = f"{100 * s['metrics']['pass@1']:.1f} ({s['tokens']['completion']['mean'] / 1000:.1f}k)"
            assert cell in text, (model, bench, cell)
    assert "78.1 (11.8k)" in text and "TinyR1-32B-Preview" in text
    # the sample holding script and an onerror handler is shown as text, not run
    assert "<script>alert(1)</script>" in text
    assert '<script>document.body.setAttribute("data-xss","script")</script>' in text
    assert "<script>document.body.setAttribute('data-xss','card')</script>" in text  # the card's
    assert "GPQA-SECRET-QUESTION-TEXT" not in dom


@pytest.mark.parametrize(("width", "name"), [(1280, "laptop"), (390, "phone")])
def test_screenshot(report: Path, tmp_path: Path, width: int, name: str) -> None:
    shot = tmp_path / f"report-{name}.png"
    _, console = chromium(report, tmp_path / "profile", f"--window-size={width},2200", f"--screenshot={shot}")
    assert console == [], console
    assert png_size(shot) == (width, 2200)
    assert shot.stat().st_size > 40_000  # a rendered page, not a blank one
