"""The semantics rerun with every core kept busy by other processes: the same verdicts, because a
test's time limit is CPU time (the wall clock only caps it at 3x + 1 s). Under a wall-clock limit
the ``busy_but_in_time`` solution would fail here: its tests take longer than the limit in wall
time, and the test checks that they did, so the load was real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox_helpers import VERDICT_CASES, cpu_hogs, run_verdict_cases


@pytest.mark.slow
def test_same_verdicts_with_every_core_busy():
    expected = {name: verdicts for name, _, _, _, verdicts in VERDICT_CASES}
    with cpu_hogs(3 * (os.cpu_count() or 2)):
        loaded = run_verdict_cases(workers=2)
    assert {name: [v for v, _, _ in tests] for name, tests in loaded.items()} == expected
    busy_limit = next(timeout for name, _, _, timeout, _ in VERDICT_CASES if name == "busy_but_in_time")
    walls = [wall for _, wall, _ in loaded["busy_but_in_time"]]
    cpus = [cpu for _, _, cpu in loaded["busy_but_in_time"]]
    assert max(walls) > busy_limit > max(cpus), (walls, cpus)  # a wall-clock limit would have said time_limit


@pytest.mark.slow
def test_semantics_suite_rerun_with_both_cores_busy():
    """The whole semantics suite (every verdict it asserts) again, while another process keeps every
    core busy."""
    root = Path(__file__).resolve().parents[1]
    suite = Path(__file__).with_name("test_sandbox_semantics.py")
    with cpu_hogs() as hogs:
        proc = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"],
                              cwd=root, capture_output=True, text=True, timeout=900)  # fmt: skip
        assert all(h.is_alive() for h in hogs)  # the load lasted the whole run
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
