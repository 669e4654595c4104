"""--executor ray on a real local Ray cluster (2 CPUs): the same rows and verdicts as --executor local
for verify (code, through the real sandbox), curate and evaluate (loopback OpenAI server); a Ray
worker killed mid-run and then the driver killed with -9 lose nothing after --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from branchmerge.curate import CurateConfig, curate
from branchmerge.records import RunStore, read_parquet_rows
from tests.curate_helpers import math_answer, math_problem, teacher_responder, write_jsonl
from tests.openai_server import ChatServer

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'branchmerge[ray]')")

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("time", "wall", "cpu_s", "memory", "rss", "elapsed", "cached", "duration")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local cluster for the module; the executor joins it instead of starting its own."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


def _stable(value: Any) -> Any:
    """A row without the fields that differ between any two runs (timings, memory, cache hits)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _answer(code: str) -> str:
    return f"<think>\nplan\n</think>\n\n```python\n{code}\n```\n"


STDIO = {"inputs": ["3\n", "5\n"], "outputs": ["6\n", "10\n"]}
CALL = {"inputs": ["1\n2", "5\n5"], "outputs": ["3", "10"], "fn_name": "add"}


def test_verify_code_file_on_ray_gives_the_local_verdicts(tmp_path):
    from branchmerge.cli import app

    programs = [
        ("print(int(input()) * 2)", STDIO), ("print(int(input()) * 3)", STDIO), ("import sys\nsys.exit(1/0)", STDIO),
        ("class Solution:\n    def add(self, a, b):\n        return a + b", CALL), ("def broken(:\n    pass", STDIO),
    ]
    rows = [{"id": f"c{i}", "completion": _answer(code), "reference": ref} for i, (code, ref) in enumerate(programs * 3)]
    rows += [{"id": "none", "completion": "<think>\nhm\n</think>\n\nno code", "reference": STDIO},
             {"id": "cut", "completion": "<think>\nstill ```python\nprint(", "reference": STDIO}]
    src = write_jsonl(tmp_path / "code.jsonl", rows)
    outs = {}
    for executor in ("local", "ray"):
        outs[executor] = tmp_path / f"{executor}.jsonl"
        result = CliRunner().invoke(app, ["verify", "code", str(src), "--out", str(outs[executor]), "--workers", "2",
                                          "--executor", executor])
        assert result.exit_code == 0, result.output + repr(result.exception)
    local, remote = ([json.loads(x) for x in outs[e].read_text().splitlines()] for e in ("local", "ray"))
    assert [r["id"] for r in remote] == [r["id"] for r in rows]  # file order kept whatever order tasks finished
    assert _stable(remote) == _stable(local)
    verdicts = [r["verdict_detail"]["rule"] for r in local[:5]]
    assert verdicts[:4] == ["accepted", "wrong_answer", "runtime_error", "accepted"]
    assert [r["verdict"] for r in local[-2:]] == ["unparsed", "truncated"]


def _curate_args(src: Path, out: Path, url: str) -> list[str]:
    return ["curate", "math", "--source", str(src), "--out", str(out), "--teacher", "openai", "--model", "r1",
            "--base-url", url, "--teacher-option", "concurrency=2", "--decontam", "none", "--n", "2"]


def _data(out: Path) -> list[dict]:
    return [r for f in sorted((out / "data").glob("*.parquet")) for r in read_parquet_rows(f)]


def _rejected(out: Path) -> list[dict]:
    return [r for f in sorted((out / "rejected").glob("*.parquet")) for r in read_parquet_rows(f)]


def _problems(tmp_path: Path, n: int) -> Path:
    return write_jsonl(tmp_path / "p.jsonl", [{"problem": math_problem(i), "answer": str(math_answer(i))}
                                              for i in range(n)])


def _config(src: Path, out: Path, url: str, executor: str, **kw: Any) -> CurateConfig:
    return CurateConfig(domain="math", source=str(src), out=str(out), teacher="openai", model="r1", base_url=url,
                        teacher_options={"concurrency": 2}, decontam=[], n_samples=2, executor=executor, **kw)


def test_curate_on_ray_writes_the_local_dataset(tmp_path):
    src = _problems(tmp_path, 18)
    with ChatServer(responder=teacher_responder()) as server:
        curate(_config(src, tmp_path / "local", server.url, "local"))
        requests_local = server.total_requests
        curate(_config(src, tmp_path / "ray", server.url, "ray"))
        assert server.total_requests == 2 * requests_local == 2 * 36  # each sample asked for exactly once
    assert _data(tmp_path / "ray") == _data(tmp_path / "local") and len(_data(tmp_path / "local")) > 0
    assert _stable(_rejected(tmp_path / "ray")) == _stable(_rejected(tmp_path / "local"))
    stats = {e: json.loads((tmp_path / e / "stats.json").read_text()) for e in ("local", "ray")}
    assert stats["ray"]["funnel"] == stats["local"]["funnel"]
    assert stats["ray"]["executor"]["name"] == "ray" and stats["ray"]["executor"]["cpus"] == 2
    assert stats["ray"]["config"]["executor"] == "ray" and stats["local"]["executor"]["name"] == "local"


def test_evaluate_on_ray_gives_the_local_samples_and_summary(tmp_path, monkeypatch):
    from branchmerge.cli import app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_jsonl(tmp_path / "aime.jsonl", [{"id": f"a{i}", "problem": f"Compute {i}*6+1.", "answer": str(6 * i + 1)}
                                                  for i in range(1, 8)] + [{"id": "a42", "problem": "Compute 6*7.",
                                                                            "answer": "42"}])
    with ChatServer() as server:  # always answers \boxed{42}: a42 right, the rest wrong
        for executor in ("local", "ray"):
            result = CliRunner().invoke(app, [
                "evaluate", "--bench", "aime24", "--engine", "openai", "--base-url", server.url, "--model", "served",
                "--n", "3", "--data", str(data), "--out", str(tmp_path / executor), "--engine-opt", "concurrency=2",
                "--executor", executor, "--workers", "2"])
            assert result.exit_code == 0, result.output + repr(result.exception)
        assert server.total_requests == 2 * 8 * 3
    read = {e: [json.loads(x) for x in (tmp_path / e / "aime24" / "samples.jsonl").read_text().splitlines()]
            for e in ("local", "ray")}
    assert _stable(read["ray"]) == _stable(read["local"]) and len(read["local"]) == 24
    summaries = {e: json.loads((tmp_path / e / "aime24" / "summary.json").read_text()) for e in ("local", "ray")}
    assert summaries["ray"]["metrics"] == summaries["local"]["metrics"]
    assert summaries["ray"]["metrics"]["pass@1"] == pytest.approx(1 / 8)
    config = json.loads((tmp_path / "ray" / "aime24" / "config.json").read_text())
    assert config["executor"]["name"] == "ray"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _task_workers(pid: int, title: str) -> list[int]:
    """Ray worker processes under ``pid`` that are running ``title`` (Ray sets the process title)."""
    out = []
    for child in _descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith(f"ray::{title}"):
            out.append(child)
    return out


def _lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (out / "shards").glob("part-*.jsonl")) if out.exists() else 0


def _wait(predicate, proc, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_worker_then_killed_driver_lose_nothing_after_resume(tmp_path):
    n = 20
    src = _problems(tmp_path, n)
    killed = tmp_path / "killed"
    with ChatServer(responder=teacher_responder(delay=0.25)) as server:
        proc = subprocess.Popen([sys.executable, "-m", "branchmerge", *_curate_args(src, killed, server.url),
                                 "--executor", "ray"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True,  # its own local cluster, not this module's
                                env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
        try:
            _wait(lambda: _lines(killed) >= 4, proc)
            workers: list[int] = []
            _wait(lambda: bool(workers.extend(_task_workers(proc.pid, "_generate_chunk")) or workers), proc)
            os.kill(workers[0], signal.SIGKILL)  # a worker dies mid-task: Ray runs its chunk again elsewhere
            at_worker_kill = _lines(killed)
            _wait(lambda: _lines(killed) >= at_worker_kill + 6, proc)  # the run goes on
            os.killpg(proc.pid, signal.SIGKILL)  # then the driver and its local cluster die with -9
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        before = len(RunStore(killed))
        assert 10 <= before < 2 * n and not (killed / "data").exists()

        curate(_config(src, killed, server.url, "ray", resume=True))
        whole = tmp_path / "whole"
        curate(_config(src, whole, server.url, "local"))

    store = RunStore(killed)
    assert len(store) == 2 * n and _lines(killed) == 2 * n  # every completion stored exactly once
    assert _data(killed) == _data(whole) and len(_data(whole)) > 0
    assert json.loads((killed / "stats.json").read_text())["funnel"] == json.loads(
        (whole / "stats.json").read_text())["funnel"]


def test_fleet_concurrency_is_per_server_across_ray_tasks():
    """Every Ray task builds its own fleet: the tasks in flight are capped so that each server still
    sees at most ``concurrency`` requests at once."""
    from branchmerge.engines.base import Request, SamplingParams
    from branchmerge.executors import get_executor
    from branchmerge.executors.work import RayTaskEngine
    from tests.openai_server import PeakCounter

    counter = PeakCounter()
    with ChatServer(responder=counter.responder("a")) as a, ChatServer(responder=counter.responder("b")) as b:
        engine = RayTaskEngine(get_executor("ray"), "openai", "m",
                               {"base_url": [a.url, b.url], "concurrency": 2, "timeout_s": 10.0})
        requests = [Request(f"r{i}", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(40)]
        got = engine.generate(requests, SamplingParams(n=1, max_tokens=8))
    assert len(got) == 40
    assert set(counter.peak) == {"a", "b"} and max(counter.peak.values()) <= 2, counter.peak
