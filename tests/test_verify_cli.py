"""``branchmerge verify``: pair mode, file mode with unreadable rows, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "branchmerge", *args], capture_output=True, text=True, timeout=120)


def test_pair_mode_prints_verdict_and_why() -> None:
    res = _cli("verify", "math", "--gold", "\\frac{1}{2}", "--pred", "<think>hm</think> So $\\boxed{0.5}$.")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("correct")
    assert "rule: fast_number" in res.stdout and "extracted: 0.5" in res.stdout
    res = _cli("verify", "math", "--gold", "3", "--pred", "\\boxed{3}", "--json")
    assert json.loads(res.stdout)["verdict_detail"]["rule"] == "no_think_close"
    res = _cli("verify", "math", "--gold", "3", "--pred", "\\boxed{3}", "--no-think", "--json")
    assert json.loads(res.stdout)["verdict"] == "correct"


def test_file_mode_keeps_every_row(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": "a", "domain": "math", "completion": "<think>x</think>\\boxed{\\frac{\\pi}{2}}", "reference": "\\pi/2"},
        "not json at all",
        {"id": "b", "completion": "<think>x</think>\\boxed{2}", "reference": "3"},
        {"id": "c"},
        {"id": "d", "completion": "<think>x</think>\\boxed{2}", "reference": "2", "finish_reason": "length"},
    ]
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    res = _cli("verify", "math", str(src), "--out", str(out), "--workers", "1")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["correct", "error", "incorrect", "error", "truncated"]
    assert rows[1]["line"] == 2 and rows[1]["verdict_detail"]["rule"] == "unreadable_row"
    assert rows[3]["id"] == "c" and "completion" in rows[3]["verdict_detail"]["error"]
    assert f"{src}:2" in res.stderr.replace("\n", "") and f"{src}:4" in res.stderr.replace("\n", "")
    assert "correct" in res.stderr and "truncated" in res.stderr


def test_science_file_summary_reports_both_modes(tmp_path: Path) -> None:
    ref = {"answer": "B", "options": {"A": "1", "B": "2", "C": "3", "D": "4"}}
    src = tmp_path / "sci.jsonl"
    src.write_text("\n".join(json.dumps({"completion": c, "reference": ref}) for c in
                             ["<think>x</think>Answer: B", "<think>x</think>I pick B", "<think>x</think>Answer: C"]))
    out = tmp_path / "sci_out.jsonl"
    res = _cli("verify", "science", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert [json.loads(r)["verdict"] for r in out.read_text().splitlines()] == ["correct", "unparsed", "incorrect"]
    assert "strict" in res.stderr and "lenient" in res.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert _cli("verify", "physics", "--gold", "1", "--pred", "1").returncode == 2
    res = _cli("verify", "math", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "no such file" in res.stderr
    assert _cli("verify", "math", str(tmp_path / "x.jsonl")).returncode == 2  # no --out
    assert _cli("verify", "math", "--gold", "1").returncode == 2  # no --pred
    assert _cli("verify", "math", "--gold", "1", "--pred", "x", "--gold-format", "hex").returncode == 2


def test_ctrl_c_ends_with_one_line_and_no_half_written_output(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, grading workers included: one line, exit 130, no
    traceback from any worker, no output file, no worker left running."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"completion": f"<think>x</think> The answer is $x^{{{k}}}+\\sin({k}x)$.", "reference": f"\\sin({k}x)+x^{{{k}}}"}
            for k in range(20000)]  # distinct pairs for the full check: minutes of work
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.Popen([sys.executable, "-m", "branchmerge", "verify", "math", str(src), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(3)  # the workers are grading by now
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its process group is left
