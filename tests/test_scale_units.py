"""Scale-out pieces that need no cluster: the openai engine's fleet of servers, the vLLM engine's
chunked storing, the executor switch without Ray, and the multi-node launch command."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from branchmerge.engines.base import Request, SamplingParams, pending
from branchmerge.engines.openai import Fleet, OpenAIEngine, is_loopback, split_urls
from branchmerge.engines.vllm import plan_chunks, run_in_chunks
from branchmerge.errors import UserError
from branchmerge.executors import LocalExecutor, chunked, get_executor
from tests.openai_server import ChatServer, PeakCounter


def _dead_url() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _engine(urls, **kw) -> OpenAIEngine:
    opts = dict(concurrency=2, timeout_s=2.0, max_retries=6, backoff_s=0.01, max_backoff_s=0.05, cooldown_s=0.2)
    return OpenAIEngine("m", base_url=urls, **{**opts, **kw})


def _requests(n: int) -> list[Request]:
    return [Request(f"r{i}", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)]


def test_split_urls_and_loopback_of_a_fleet():
    assert split_urls("http://a:1/v1/, http://b:2/v1") == ["http://a:1/v1", "http://b:2/v1"]
    assert split_urls(["http://a:1/v1", "http://b:2/v1,http://c:3/v1"]) == ["http://a:1/v1", "http://b:2/v1",
                                                                              "http://c:3/v1"]
    with pytest.raises(UserError, match="twice"):
        split_urls("http://a/v1,http://a/v1")
    assert is_loopback("http://127.0.0.1:1/v1,http://localhost:2/v1")
    assert not is_loopback("http://127.0.0.1:1/v1,http://10.0.0.2:2/v1")


def test_concurrency_is_per_server_and_both_servers_work():
    counter = PeakCounter()
    with ChatServer(responder=counter.responder("a")) as a, ChatServer(responder=counter.responder("b")) as b:
        engine = _engine([a.url, b.url], concurrency=2)
        got = engine.generate(_requests(24), SamplingParams(n=1, max_tokens=8))
        engine.close()
    assert len(got) == 24 and a.total_requests + b.total_requests == 24
    assert counter.peak == {"a": 2, "b": 2}  # each server had its own two slots, and used them


def test_a_dead_server_is_taken_out_of_rotation():
    dead = _dead_url()
    with ChatServer() as live:
        engine = _engine(f"{dead},{live.url}", fail_after=2, cooldown_s=60)
        got = engine.generate(_requests(30), SamplingParams(n=1, max_tokens=8))
        stats = {s["url"]: s for s in engine.fleet.stats()}
        engine.close()
    assert len(got) == 30 and all(c.finish_reason == "stop" for c in got)
    assert live.total_requests == 30
    assert stats[dead]["in_rotation"] is False and stats[dead]["times_out"] == 1
    assert stats[dead]["requests"] <= 2 + 2  # fail_after failures (plus what was already in flight), then no more


def test_a_failing_server_comes_back_after_its_cooldown():
    faults = {f"q{i}": ["500"] for i in range(3)}  # the first three prompts meet one 500 each on "flaky"
    with ChatServer(faults=faults) as flaky, ChatServer() as steady:
        engine = _engine([flaky.url, steady.url], concurrency=1, fail_after=1, cooldown_s=0.3, max_cooldown_s=0.3)
        got = engine.generate(_requests(3), SamplingParams(n=1, max_tokens=8))
        assert engine.fleet.stats()[0]["times_out"] >= 1
        time.sleep(0.35)  # the cooldown is over: the next request probes flaky, and it answers
        more = engine.generate(_requests(40)[3:], SamplingParams(n=1, max_tokens=8))
        stats = engine.fleet.stats()
        engine.close()
    assert len(got) == 3 and len(more) == 37
    assert stats[0]["in_rotation"] and flaky.total_requests > 10  # back in rotation, sharing the load again


def test_fleet_waits_for_the_first_server_back_when_all_are_out():
    fleet = Fleet(["http://x/v1", "http://y/v1"], concurrency=1, fail_after=1, cooldown_s=0.3)
    for _ in range(2):
        fleet.release(fleet.acquire(), False)
    assert [s["in_rotation"] for s in fleet.stats()] == [False, False]
    start = time.monotonic()
    probe = fleet.acquire()  # nobody is usable: the request waits for the first cooldown to end, not fails
    assert time.monotonic() - start >= 0.25 and probe.url in ("http://x/v1", "http://y/v1")
    fleet.release(probe, True)
    assert [s["in_rotation"] for s in fleet.stats()].count(True) == 1


def test_vllm_chunks_cover_the_work_in_order():
    work = list(range(10))
    assert plan_chunks(work, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plan_chunks(work, 100) == [work] and plan_chunks([], 3) == []
    for size in (1, 3, 7):
        chunks = plan_chunks(work, size)
        assert [x for c in chunks for x in c] == work and max(map(len, chunks)) <= size
    with pytest.raises(UserError):
        plan_chunks(work, 0)


def test_a_crash_in_vllm_generation_loses_one_chunk_and_resume_asks_for_the_rest():
    requests, params = _requests(5), SamplingParams(n=3)
    work = pending(requests, params, ())
    stored: list[tuple[str, int]] = []
    calls = []

    def generate(chunk):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return [f"text of {r.id}#{s}" for r, s in chunk]

    with pytest.raises(RuntimeError):
        run_in_chunks(work, 4, generate, lambda item, out: stored.append((item[0].id, item[1])))
    assert stored == [(r.id, s) for r, s in work[:8]]  # the two chunks before the crash are stored
    rest = pending(requests, params, set(stored))
    assert len(rest) == 15 - 8 and {(r.id, s) for r, s in rest} | set(stored) == {(r.id, s) for r, s in work}
    assert run_in_chunks(rest, 4, lambda chunk: [0] * len(chunk), lambda item, out: stored.append(item)) == 7


def test_local_executor_and_chunking():
    ex = get_executor("local", workers=3)
    assert isinstance(ex, LocalExecutor) and ex.info()["workers"] == 3
    assert list(ex.map(str.upper, ["a", "b"])) == [(0, "A"), (1, "B")]
    chunks = chunked(list(range(100)), slots=2)
    assert [x for c in chunks for x in c] == list(range(100)) and len(chunks) >= 8
    with pytest.raises(UserError, match="executor"):
        get_executor("dask")


def test_ray_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(UserError) as info:
        get_executor("ray")
    assert "pip install 'branchmerge[ray]'" in str(info.value) and "\n" not in str(info.value)


def test_ray_data_llm_stage_switches_follow_the_installed_config():
    """Ray renamed the processor's stage switches and forbids unknown fields: both shapes must build."""
    from pydantic import BaseModel, ConfigDict

    from branchmerge.executors.llm import stage_options

    class Old(BaseModel):  # ray.data.llm before the rename
        model_config = ConfigDict(extra="forbid")
        apply_chat_template: bool = True
        tokenize: bool = True
        detokenize: bool = True

    class New(BaseModel):  # ray 2.60: only the *_stage names
        model_config = ConfigDict(extra="forbid")
        chat_template_stage: object = True
        tokenize_stage: object = True
        detokenize_stage: object = True

    assert Old(**stage_options(Old, chat=False)).apply_chat_template is False
    new = New(**stage_options(New, chat=False))
    assert new.chat_template_stage is False and new.tokenize_stage is True
    with pytest.raises(ValueError):
        New(**stage_options(Old, chat=True))


def test_ray_data_llm_config_of_the_installed_ray_builds():
    from branchmerge.executors.llm import stage_options

    real = pytest.importorskip("ray.data.llm", reason="ray[data,llm] not installed")
    config = real.vLLMEngineProcessorConfig(model_source="m", **stage_options(real.vLLMEngineProcessorConfig, chat=True))
    assert config.model_source == "m"
