"""The run loop: stored generations, resume after a kill, rescoring, GPQA per-sample prompts, and an
end-to-end run of the CLI on a tiny model through the hf engine."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from branchmerge.benchmarks.registry import get_spec
from branchmerge.errors import UserError
from branchmerge.evaluate.run import RunOptions, run_benchmark
from tests.conftest import BENCHMARKS
from tests.evaluate_helpers import ScriptedEngine, write_gpqa_csv

AIME_ROWS = [
    {"id": "a1", "problem": "Compute 6*7.", "answer": "42"},
    {"id": "a2", "problem": "Compute 10+5.", "answer": "15"},
    {"id": "a3", "problem": "Compute 2^5.", "answer": "32"},
]


@pytest.fixture
def aime_file(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in AIME_ROWS))
    return path


def math_answer(request, s):
    """a1 always right; a2 right on even samples; a3 wrong (7) or truncated."""
    pid = request.id
    if pid == "a1":
        return "<think>\n6*7=42\n</think>\n\nThe answer is $\\boxed{42}$."
    if pid == "a2":
        return "<think>\nsum\n</think>\n\n" + ("\\boxed{15}" if s % 2 == 0 else "\\boxed{16}")
    return "<think>\nstill thinking" if s == 3 else "<think>\nhm\n</think>\n\\boxed{7}"


def opts(data, **kw):
    base = {"model": "scripted", "engine": "scripted", "n": 4, "data": str(data), "grade_workers": 1}
    return RunOptions(**{**base, **kw})


def read_samples(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_samples_summary_config(tmp_path, aime_file):
    summary = run_benchmark(get_spec("aime24"), opts(aime_file), tmp_path / "out", ScriptedEngine(math_answer))
    bench = tmp_path / "out" / "aime24"
    samples = read_samples(bench / "samples.jsonl")
    assert len(samples) == 12
    by = {(r["id"], r["sample_idx"]): r for r in samples}
    assert by[("a1", 0)]["verdict"] == "correct"
    assert by[("a2", 1)]["verdict"] == "incorrect"
    assert by[("a3", 3)]["verdict"] == "truncated" and by[("a3", 3)]["finish_reason"] == "length"
    for r in samples:
        assert len(r["prompt_hash"]) == 16 and r["reasoning"] is not None and r["verdict_detail"] is not None
    assert len({r["prompt_hash"] for r in samples}) == 3  # one prompt per problem
    m = summary["metrics"]
    assert m["pass@1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["pass@k"]["2"] == pytest.approx((1 + (1 - 1 / 6) + 0) / 3)
    assert m["cons@n"] == pytest.approx(2 / 3)  # a1 yes; a2 ties 2-2 and 15 came first: yes; a3 votes 7: no
    assert m["truncated_rate"] == pytest.approx(1 / 12)
    on_disk = json.loads((bench / "summary.json").read_text())
    assert on_disk["kind"] == "evaluation" and on_disk["bench"] == "aime24" and on_disk["n"] == 4
    assert on_disk["bench_version"].startswith("aime.jsonl@")
    config = json.loads((bench / "config.json").read_text())
    assert config["sampling"]["temperature"] == 0.6 and config["sampling"]["max_tokens"] == 32768
    assert config["spec"]["grader"] == {"gold_format": "int"}
    assert config["dataset"]["num_rows"] == 3 and config["git_commit"] is not None
    assert (bench / "samples.parquet").exists() and (bench / "README.md").exists()


def test_resume_after_a_kill_generates_only_the_rest(tmp_path, aime_file):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(get_spec("aime24"), opts(aime_file), out, ScriptedEngine(math_answer, fail_after=5))
    shard = next((out / "aime24" / "shards").glob("*.jsonl"))
    assert len(shard.read_text().splitlines()) == 5
    with shard.open("a") as fh:  # a torn last line, as a SIGKILL mid-write leaves it
        fh.write('{"id": "a3", "sample_')
    with pytest.raises(UserError, match="pass --resume"):
        run_benchmark(get_spec("aime24"), opts(aime_file), out, ScriptedEngine(math_answer))
    engine = ScriptedEngine(math_answer)
    summary = run_benchmark(get_spec("aime24"), opts(aime_file, resume=True), out, engine)
    assert len(engine.calls[0]["skip"]) == 5
    assert summary["num_samples"] == 12
    fresh = run_benchmark(get_spec("aime24"), opts(aime_file), tmp_path / "fresh", ScriptedEngine(math_answer))
    assert summary["metrics"] == fresh["metrics"]
    # a resumed run must be the same experiment
    with pytest.raises(UserError, match=r"different settings \(sampling.temperature\)"):
        run_benchmark(get_spec("aime24"), opts(aime_file, resume=True, temperature=1.0), out, engine)


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from branchmerge.benchmarks.registry import get_spec
from branchmerge.evaluate.run import RunOptions, run_benchmark
from tests.evaluate_helpers import ScriptedEngine
from tests.test_evaluate_run import math_answer

def slow(request, s):
    time.sleep(0.3)
    return math_answer(request, s)

run_benchmark(get_spec("aime24"), RunOptions(model="scripted", n=4, data={data!r}, grade_workers=1),
              __import__("pathlib").Path({out!r}), ScriptedEngine(slow))
"""


def test_resume_after_sigkill(tmp_path, aime_file):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    out = tmp_path / "out"
    script = KILL_SCRIPT.format(root=root, data=str(aime_file), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root)
    shard_dir = out / "aime24" / "shards"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = sum(len(p.read_text().splitlines()) for p in shard_dir.glob("*.jsonl")) if shard_dir.exists() else 0
        if lines >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = sum(len(p.read_text().splitlines()) for p in shard_dir.glob("*.jsonl"))
    assert 3 <= stored < 12 and not (out / "aime24" / "summary.json").exists()
    engine = ScriptedEngine(math_answer)
    summary = run_benchmark(get_spec("aime24"), opts(aime_file, resume=True), out, engine)
    assert len(engine.calls[0]["skip"]) == stored
    assert summary["num_samples"] == 12
    assert summary["metrics"]["pass@1"] == pytest.approx(0.5)


def test_resume_with_larger_n_adds_samples(tmp_path, aime_file):
    out = tmp_path / "out"
    run_benchmark(get_spec("aime24"), opts(aime_file, n=2), out, ScriptedEngine(math_answer))
    engine = ScriptedEngine(math_answer)
    summary = run_benchmark(get_spec("aime24"), opts(aime_file, n=4, resume=True), out, engine)
    assert summary["n"] == 4 and summary["num_samples"] == 12
    assert len(engine.calls[0]["skip"]) == 6


def test_rescore_reproduces_the_summary_without_an_engine(tmp_path, aime_file):
    out = tmp_path / "out"
    first = run_benchmark(get_spec("aime24"), opts(aime_file), out, ScriptedEngine(math_answer))
    samples = (out / "aime24" / "samples.jsonl").read_text()
    (out / "aime24" / "samples.jsonl").unlink()
    again = run_benchmark(get_spec("aime24"), opts(None, rescore=True), out, engine=None)
    for key in ("metrics", "tokens", "per_problem", "bench_version", "n", "num_samples", "sampling"):
        assert again[key] == first[key], key
    assert (out / "aime24" / "samples.jsonl").read_text() == samples
    assert "rescored" in json.loads((out / "aime24" / "config.json").read_text())
    # a run resumed with a smaller --limit rescoring to the same (narrower) summary
    narrowed = run_benchmark(get_spec("aime24"), opts(aime_file, resume=True, limit=2), out, ScriptedEngine(math_answer))
    assert narrowed["num_problems"] == 2
    again = run_benchmark(get_spec("aime24"), opts(None, rescore=True), out, engine=None)
    assert again["metrics"] == narrowed["metrics"] and again["num_samples"] == 8
    with pytest.raises(UserError, match="no stored generations"):
        run_benchmark(get_spec("aime24"), opts(None, rescore=True), tmp_path / "empty", engine=None)


def test_gpqa_each_sample_has_its_own_prompt_and_shown_reference(tmp_path):
    data = write_gpqa_csv(tmp_path / "gpqa.csv", count=2)

    def answer(request, s):
        # find the letter shown next to the correct text in the prompt (a perfect model)
        content = request.messages[0]["content"]
        letter = next(line[0] for line in content.splitlines() if line[1:3] == ") " and "right-" in line)
        return f"<think>\nok\n</think>\n\nAnswer: {letter}"

    engine = ScriptedEngine(answer)
    summary = run_benchmark(get_spec("gpqa_diamond"), opts(data, n=4), tmp_path / "out", engine)
    assert engine.calls[0]["params"].n == 1 and len(engine.calls[0]["requests"]) == 8
    samples = read_samples(tmp_path / "out" / "gpqa_diamond" / "samples.jsonl")
    assert len({r["prompt_hash"] for r in samples}) > 2
    for r in samples:
        assert r["reference"]["options"][r["reference"]["answer"]].startswith("right-")
        assert "permutation" in r["reference"]
    assert summary["metrics"]["pass@1"] == 1.0
    assert summary["metrics"]["pass@1_strict"] == 1.0 and summary["metrics"]["pass@1_lenient"] == 1.0


def test_livecodebench_run_is_graded_in_the_sandbox(tmp_path):
    """The stored reference (LCB's evaluation-sample shape) is what the code verifier runs:
    stdin tests (public + decoded private) and a call-based LeetCode test via fn_name."""
    from tests.evaluate_helpers import write_lcb_jsonl

    good = {"hasK": "class Solution:\n    def hasK(self, nums, k):\n        return k in nums\n",
            "stdin": "a, b = map(int, input().split())\nprint(a + b)\n"}
    bad = {"hasK": "class Solution:\n    def hasK(self, nums, k):\n        return False\n",
           "stdin": "a, b = map(int, input().split())\nprint(a + b if a < 3 else 0)\n"}  # fails the private test

    def answer(request, s):
        kind = "hasK" if "hasK" in request.messages[0]["content"] else "stdin"
        return f"<think>\nok\n</think>\n\n```python\n{(good if s == 0 else bad)[kind]}```"

    summary = run_benchmark(get_spec("livecodebench"), opts(write_lcb_jsonl(tmp_path / "lcb.jsonl"), n=2),
                            tmp_path / "out", ScriptedEngine(answer))
    samples = {(r["id"], r["sample_idx"]): r for r in read_samples(tmp_path / "out" / "livecodebench" / "samples.jsonl")}
    assert {k: r["verdict"] for k, r in samples.items()} == {
        ("abc900_a", 0): "correct", ("abc900_a", 1): "incorrect", ("has-k", 0): "correct", ("has-k", 1): "incorrect"}
    assert summary["metrics"]["pass@1"] == 0.5 and summary["metrics"]["pass@k"]["2"] == 1.0
    assert summary["num_problems"] == 2  # the 2024-03 problem is outside the default window


def test_cli_end_to_end_on_a_tiny_model(tmp_path, tiny_model):
    from branchmerge.cli import app

    out = tmp_path / "res"
    args = ["evaluate", "--bench", "aime24", "--bench", "math500", "--model", str(tiny_model), "--n", "2",
            "--max-tokens", "8", "--limit", "2", "--out", str(out),
            "--data", f"aime24={BENCHMARKS / 'aime24.jsonl'}", "--data", f"math500={BENCHMARKS / 'math500.jsonl'}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for bench in ("aime24", "math500"):
        summary = json.loads((out / bench / "summary.json").read_text())
        assert summary["num_samples"] == 4 and summary["n"] == 2
        samples = read_samples(out / bench / "samples.jsonl")
        for r in samples:
            assert r["completion_tokens"] == 8 and r["finish_reason"] == "length" and r["verdict"] == "truncated"
        assert summary["metrics"]["truncated_rate"] == 1.0 and summary["tokens"]["completion"]["mean"] == 8
        config = json.loads((out / bench / "config.json").read_text())
        assert config["think_prefix"] == {"template_opens_think": True, "forced": False}
        assert config["engine"]["engine"] == "hf" and config["model_fingerprint"]["local"] is True
    # rescore through the CLI: same metrics
    before = json.loads((out / "aime24" / "summary.json").read_text())
    result = CliRunner().invoke(app, ["evaluate", "--bench", "aime24", "--rescore", "--out", str(out)])
    assert result.exit_code == 0, result.output
    after = json.loads((out / "aime24" / "summary.json").read_text())
    assert after["metrics"] == before["metrics"] and after["tokens"] == before["tokens"]


def test_cli_openai_engine_against_a_loopback_server(tmp_path, aime_file, monkeypatch):
    from branchmerge.cli import app
    from tests.openai_server import ChatServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a loopback server needs no key
    out = tmp_path / "res"
    with ChatServer() as server:  # answers \boxed{42} with separate reasoning_content, 17 tokens
        result = CliRunner().invoke(app, [
            "evaluate", "--bench", "aime24", "--engine", "openai", "--base-url", server.url, "--model", "served",
            "--n", "2", "--data", str(aime_file), "--out", str(out), "--engine-opt", "concurrency=2"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert server.total_requests == 6
        assert {b["model"] for b in server.bodies} == {"served"}
        assert all(b["temperature"] == 0.6 and b["top_p"] == 0.95 for b in server.bodies)
    summary = json.loads((out / "aime24" / "summary.json").read_text())
    assert summary["metrics"]["pass@1"] == pytest.approx(1 / 3)  # only a1's gold is 42
    assert summary["tokens"]["completion"]["mean"] == 17 and summary["tokens"]["split_method"] == "characters"
    config = json.loads((out / "aime24" / "config.json").read_text())
    assert config["think_prefix"] == {"template_opens_think": None, "forced": False}
    assert config["engine"]["base_url"] == server.url and config["model"] == "served"


def test_cli_rejects_bad_combinations(tmp_path):
    from branchmerge.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "--bench", "aime24", "--out", str(tmp_path), "--resume", "--rescore"])
    assert isinstance(r.exception, UserError) and "exclude each other" in str(r.exception)
    r = runner.invoke(app, ["evaluate", "--bench", "aime24", "--bench", "math500", "--model", "m",
                            "--data", "x.jsonl", "--out", str(tmp_path)])
    assert isinstance(r.exception, UserError) and "NAME=PATH" in str(r.exception)
    r = runner.invoke(app, ["evaluate", "--bench", "nope", "--model", "m", "--out", str(tmp_path)])
    assert isinstance(r.exception, UserError) and "unknown benchmark" in str(r.exception)
