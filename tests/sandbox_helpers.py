"""Shared pieces of the sandbox tests: the CLI driver and the host watcher."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchmerge.cli import app
from branchmerge.sandbox import tiers

SAFE = ["bwrap", "unshare", "landlock"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dedicated sandbox uids need root (CI runs as root)")


def tier_param(tier: str):
    """A pytest param for ``tier``, skipped only when its tool is not installed."""
    missing = tier in ("bwrap", "unshare") and shutil.which(tier) is None
    return pytest.param(tier, marks=pytest.mark.skipif(missing, reason=f"{tier} not installed"))


SAFE_PARAMS = [tier_param(t) for t in SAFE]


def cli_run(tmp_path: Path, code: str, tests: dict, *args: str) -> tuple[int, dict]:
    """Run one program through ``branchmerge sandbox run --json``; (exit code, result dict)."""
    sol = tmp_path / "solution.py"
    sol.write_text(code)
    spec = tmp_path / "tests.json"
    spec.write_text(json.dumps(tests))
    res = CliRunner().invoke(app, ["sandbox", "run", str(sol), "--tests", str(spec), "--json", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    return res.exit_code, (json.loads(lines[-1]) if lines else {})


class HostWatch:
    """Records the uids and scratch dirs sandboxes use, so a test can check nothing survived."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.uids: list[int] = []
        self.scratches: list[str] = []
        enter, scratch = tiers.Slot.__enter__, tiers._scratch

        def _enter(slot):
            out = enter(slot)
            if slot.uid is not None:
                self.uids.append(slot.uid)
            return out

        def _scratch(uid):
            path = scratch(uid)
            self.scratches.append(path)
            return path

        monkeypatch.setattr(tiers.Slot, "__enter__", _enter)
        monkeypatch.setattr(tiers, "_scratch", _scratch)

    def survivors(self) -> list[int]:
        """Live processes of the recorded uids, after giving SIGKILLs a moment to land."""
        deadline = time.monotonic() + 2
        while True:
            alive = [pid for uid in set(self.uids) for pid in tiers._live_pids(uid)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.05)

    def assert_clean(self) -> None:
        assert self.survivors() == []
        assert [p for p in self.scratches if os.path.exists(p)] == []
