"""kill -9 in the middle of a curation run, then --resume: the same dataset as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from branchmerge.curate import CurateConfig, curate
from branchmerge.records import RunStore, read_parquet_rows
from tests.curate_helpers import math_answer, math_problem, teacher_responder, write_jsonl
from tests.openai_server import ChatServer

ROOT = Path(__file__).resolve().parents[1]
N = 36


def _args(src: Path, out: Path, url: str) -> list[str]:
    return ["curate", "math", "--source", str(src), "--out", str(out), "--teacher", "openai", "--model", "r1",
            "--base-url", url, "--teacher-option", "concurrency=2", "--decontam", "none", "--select", "shortest"]


def _shard_lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (out / "shards").glob("part-*.jsonl")) if out.exists() else 0


def _data(out: Path) -> list[dict]:
    return [r for f in sorted((out / "data").glob("*.parquet")) for r in read_parquet_rows(f)]


def test_kill_9_then_resume_gives_the_uninterrupted_dataset(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"problem": math_problem(i), "answer": str(math_answer(i))}
                                              for i in range(N)])
    killed = tmp_path / "killed"
    with ChatServer(responder=teacher_responder(delay=0.15)) as server:
        proc = subprocess.Popen([sys.executable, "-m", "branchmerge", *_args(src, killed, server.url)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _shard_lines(killed) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = len(RunStore(killed))
        assert 8 <= done_before < N and not (killed / "data").exists()

        resumed = subprocess.run([sys.executable, "-m", "branchmerge", *_args(src, killed, server.url), "--resume"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        requests_after_kill = server.total_requests

        whole = tmp_path / "whole"
        curate(CurateConfig(domain="math", source=str(src), out=str(whole), teacher="openai", model="r1",
                            base_url=server.url, teacher_options={"concurrency": 2}, decontam=[], select="shortest"))

    store = RunStore(killed)
    assert len(store) == N and _shard_lines(killed) == N  # every completion stored exactly once
    assert requests_after_kill <= N + 2  # at most the two requests in flight at the kill were paid twice
    assert _data(killed) == _data(whole) and len(_data(whole)) > 0
