"""The openai engine against a real HTTP server on loopback with injected faults."""

from __future__ import annotations

import time

import pytest

from branchmerge.engines import Request, SamplingParams, get_engine
from branchmerge.engines.openai import EngineError
from branchmerge.errors import UserError
from branchmerge.records import RunStore
from tests.openai_server import ChatServer


def _requests(prompts: list[str]) -> list[Request]:
    return [Request(id=f"p{i}", messages=[{"role": "user", "content": p}]) for i, p in enumerate(prompts)]


def _engine(url: str, **kw):
    opts = dict(base_url=url, concurrency=4, timeout_s=0.5, max_retries=4, backoff_s=0.01, max_backoff_s=0.05)
    opts.update(kw)
    return get_engine("openai", model="teacher", **opts)


def _store(tmp_path, resume=False):
    store = RunStore(tmp_path / "run", key_fields=("request_id", "sample_idx"), schema=None)
    store.open(resume=resume)
    return store


def test_every_fault_is_retried_and_each_prompt_stored_once(tmp_path):
    prompts = ["ok", "rate", "err", "stall", "bad json", "dropped", "twice"]
    faults = {"rate": ["429"], "err": ["500", "500"], "stall": ["stall"], "bad json": ["malformed"],
              "dropped": ["drop"], "twice": ["429", "drop"]}
    with ChatServer(faults=faults, retry_after=0.3) as server:
        store = _store(tmp_path)
        engine = _engine(server.url)
        out = engine.generate(_requests(prompts), SamplingParams(n=1, max_tokens=64),
                              on_complete=lambda c: store.append(vars(c)))
        store.close()
        injected = sum(len(v) for v in faults.values())
        assert server.total_requests == len(prompts) + injected
        assert engine.requests_made == server.total_requests
        rate_times = server.request_times["rate"]
    rows = list(store.rows())
    assert sorted(r["request_id"] for r in rows) == sorted(f"p{i}" for i in range(len(prompts)))
    assert len(out) == len(prompts)
    # Retry-After was honoured: the retry came no sooner than 0.3 s after the 429.
    assert rate_times[1] - rate_times[0] >= 0.28
    first = next(c for c in out if c.request_id == "p0")
    assert first.reasoning == "Let me think about 'ok'."
    assert first.answer == "The answer to 'ok' is \\boxed{42}."
    assert first.text.startswith("<think>\nLet me think") and "</think>" in first.text
    assert (first.prompt_tokens, first.completion_tokens, first.finish_reason) == (1, 17, "stop")


def test_n_samples_one_request_each_with_distinct_seeds(tmp_path):
    with ChatServer() as server:
        engine = _engine(server.url)
        out = engine.generate(_requests(["a", "b"]), SamplingParams(n=3, seed=100, temperature=0.6, top_p=0.95))
        seeds = sorted(b["seed"] for b in server.bodies)
        assert server.total_requests == 6
    assert sorted((c.request_id, c.sample_idx) for c in out) == [(f"p{i}", s) for i in range(2) for s in range(3)]
    assert seeds == [100, 100, 101, 101, 102, 102]
    assert all(b["temperature"] == 0.6 and b["top_p"] == 0.95 and b["n"] == 1 for b in server.bodies)


def test_permanent_error_is_recorded_not_retried():
    with ChatServer(faults={"bad": ["400"]}) as server:
        out = _engine(server.url).generate(_requests(["bad"]), SamplingParams())
        assert server.total_requests == 1
    assert out[0].finish_reason == "error" and "HTTP 400" in out[0].error


def test_exhausted_retries_keep_finished_rows_and_resume_pays_only_for_the_rest(tmp_path):
    faults = {"flaky": ["500"] * 3}
    with ChatServer(faults=faults) as server:
        store = _store(tmp_path)
        with pytest.raises(EngineError, match="rerun with --resume"):
            _engine(server.url, max_retries=1).generate(
                _requests(["fine", "flaky"]), SamplingParams(), on_complete=lambda c: store.append(vars(c))
            )
        store.close()
        assert server.total_requests == 1 + 2
        store = _store(tmp_path, resume=True)
        done = {(k[0], k[1]) for k in store.keys()}
        assert done == {("p0", 0)}
        _engine(server.url, max_retries=3).generate(
            _requests(["fine", "flaky"]), SamplingParams(), on_complete=lambda c: store.append(vars(c)), skip=done
        )
        store.close()
        assert server.requests["fine"] == 1  # never paid twice
        assert server.requests["flaky"] == 3 + 1
    assert sorted(r["request_id"] for r in store.rows()) == ["p0", "p1"]


def test_api_key_is_sent_but_never_in_errors(monkeypatch):
    monkeypatch.setenv("BM_TEST_KEY", "sk-secret-123")
    with ChatServer(faults={"x": ["400"]}) as server:
        out = _engine(server.url, api_key_env="BM_TEST_KEY").generate(_requests(["x"]), SamplingParams())
        assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in (out[0].error or "") and "sk-secret" not in repr(out[0])


def test_missing_key_for_remote_server_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    start = time.monotonic()
    with pytest.raises(UserError, match="DEEPSEEK_API_KEY"):
        get_engine("openai", model="deepseek-reasoner", base_url="https://api.deepseek.com/v1",
                   api_key_env="DEEPSEEK_API_KEY")
    assert time.monotonic() - start < 5


def test_raw_prompts_use_the_completions_endpoint():
    with ChatServer() as server:
        out = _engine(server.url).generate([Request(id="r", prompt="<|User|>hi<|Assistant|>")], SamplingParams())
    assert out[0].text == "The answer to '<|User|>hi<|Assistant|>' is \\boxed{42}."
    assert out[0].answer == ""  # no closing </think>: the text is all (unfinished) reasoning
