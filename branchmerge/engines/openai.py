"""Any OpenAI-compatible chat server: DeepSeek's API, ``vllm serve``, SGLang, a provider.

One HTTP request per (prompt, sample), so every sample has exact token counts from ``usage`` and
is stored the moment it finishes: an interrupted run resumes without paying for a request twice.
Transient faults (429, 5xx, time-outs, dropped connections, malformed bodies) are retried with
exponential backoff and full jitter, honouring ``Retry-After``; other 4xx answers are permanent and
are recorded as ``finish_reason="error"``. The API key is read from an environment variable and is
never logged or written anywhere.

A fleet: ``base_url`` may name several servers (a list, or URLs joined by commas), e.g. N replicas
of ``vllm serve`` or SGLang. ``concurrency`` is then per server; each request goes to the server
with the most free slots. A server whose requests fail ``fail_after`` times in a row (connection
refused, 5xx, time-outs; a 429 only slows down) is taken out of rotation for ``cooldown_s``
(doubling each time it trips again, up to ``max_cooldown_s``); after that one probe request
decides whether it is back. When every server is out, requests wait for the first to come back.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import os
import random
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlparse

from branchmerge.console import log, progress
from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EngineError(UserError):
    """Some requests still failed after every retry; the rest are stored and --resume retries these."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status


def split_urls(base_url: str | Sequence[str]) -> list[str]:
    """One URL, URLs joined by commas, or a list of them -> the list, without trailing slashes."""
    items = base_url.split(",") if isinstance(base_url, str) else [u for part in base_url for u in str(part).split(",")]
    urls = [u.strip().rstrip("/") for u in items if u.strip()]
    if not urls:
        raise UserError("--base-url is empty: give a server URL, e.g. http://127.0.0.1:8000/v1")
    if len(set(urls)) != len(urls):
        raise UserError(f"--base-url names a server twice: {', '.join(urls)}")
    return urls


DEFAULT_CONCURRENCY = 8  # requests in flight per server


class Endpoint:
    """One server of the fleet and what the engine knows about its health."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.in_flight = 0
        self.failures = 0  # transient failures in a row
        self.trips = 0  # times taken out of rotation
        self.down_until: float | None = None  # out of rotation until then; afterwards one probe decides
        self.requests = 0
        self.errors = 0

    def usable(self, now: float, concurrency: int) -> bool:
        if self.down_until is None:
            return self.in_flight < concurrency
        return self.down_until <= now and self.in_flight == 0  # half-open: a single probe


class Fleet:
    """Picks a server for each request and takes failing ones out of rotation (thread-safe)."""

    def __init__(self, urls: list[str], concurrency: int, fail_after: int = 3, cooldown_s: float = 5.0,
                 max_cooldown_s: float = 120.0, clock: Any = time.monotonic) -> None:
        self.endpoints = [Endpoint(u) for u in urls]
        self.concurrency = max(1, concurrency)
        self.fail_after = max(1, fail_after)
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.clock = clock
        self._cond = threading.Condition()
        self._turn = 0

    def acquire(self) -> Endpoint:
        """The usable server with the fewest requests in flight; waits while none is usable."""
        with self._cond:
            while True:
                now = self.clock()
                free = [e for e in self.endpoints if e.usable(now, self.concurrency)]
                if free:
                    self._turn += 1
                    n = len(self.endpoints)
                    best = min(free, key=lambda e: (e.in_flight, (self.endpoints.index(e) - self._turn) % n))
                    best.in_flight += 1
                    best.requests += 1
                    return best
                ends = [e.down_until for e in self.endpoints if e.down_until is not None and e.down_until > now]
                self._cond.wait(timeout=max(0.01, min(ends) - now) if ends else None)

    def release(self, endpoint: Endpoint, healthy: bool | None) -> None:
        """``healthy``: True (it answered), False (a transient failure), None (says nothing: a 429)."""
        with self._cond:
            endpoint.in_flight -= 1
            if healthy:
                if endpoint.down_until is not None:
                    log.info("server %s is back in rotation", endpoint.url)
                endpoint.failures, endpoint.trips, endpoint.down_until = 0, 0, None
            elif healthy is False:
                endpoint.errors += 1
                if endpoint.down_until is not None and endpoint.down_until > self.clock():
                    self._cond.notify_all()  # sent before the server left the rotation: nothing new to learn
                    return
                endpoint.failures += 1
                probing = endpoint.down_until is not None
                if probing or endpoint.failures >= self.fail_after:
                    wait = min(self.max_cooldown_s, self.cooldown_s * 2**endpoint.trips)
                    endpoint.trips += 1
                    endpoint.down_until = self.clock() + wait
                    if len(self.endpoints) > 1:
                        log.warning("server %s out of rotation for %.0fs after %d failure(s) in a row",
                                    endpoint.url, wait, endpoint.failures)
            elif endpoint.down_until is not None and endpoint.in_flight == 0:
                endpoint.down_until = self.clock()  # the probe met a 429: alive, probe again
            self._cond.notify_all()

    def stats(self) -> list[dict[str, Any]]:
        with self._cond:
            return [{"url": e.url, "requests": e.requests, "transient_errors": e.errors, "times_out": e.trips,
                     "in_rotation": e.down_until is None} for e in self.endpoints]


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = 600.0,
        max_retries: int = 8,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        fail_after: int = 3,
        cooldown_s: float = 5.0,
        max_cooldown_s: float = 120.0,
    ) -> None:
        import httpx

        self._spec = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency,
                      "timeout_s": timeout_s, "max_retries": max_retries, "backoff_s": backoff_s,
                      "max_backoff_s": max_backoff_s, "extra_body": extra_body, "fail_after": fail_after,
                      "cooldown_s": cooldown_s, "max_cooldown_s": max_cooldown_s}
        self.model = model
        self.urls = split_urls(base_url)
        self.base_url = ",".join(self.urls)
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
        self.fleet = Fleet(self.urls, self.concurrency, fail_after, cooldown_s, max_cooldown_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        key = os.environ.get(api_key_env)
        if not key and not is_loopback(self.base_url):
            raise UserError(
                f"no API key: set the environment variable {api_key_env} for {self.base_url} "
                "(or name another variable with --api-key-env)"
            )
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(30.0, timeout_s)),
            limits=httpx.Limits(max_connections=self.concurrency * len(self.urls),
                                max_keepalive_connections=self.concurrency * len(self.urls)),
        )
        self._lock = threading.Lock()
        self.requests_made = 0

    def info(self) -> dict[str, Any]:
        import httpx

        return {"engine": self.name, "model": self.model, "base_url": self.base_url, "httpx": httpx.__version__}

    def spec(self) -> dict[str, Any]:
        """The model and constructor options, to build the same engine elsewhere (a Ray worker)."""
        return {"model": self.model, "options": dict(self._spec)}

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        work = pending(requests, params, skip)
        results = Delivered(on_complete)
        failures: list[str] = []
        with progress() as bar, ThreadPoolExecutor(self.concurrency * len(self.urls)) as pool:
            task = bar.add_task(f"openai {self.model}", total=len(work))
            futures = {pool.submit(self._one, r, s, params): (r.id, s) for r, s in work}
            for future in as_completed(futures):
                rid, sample_idx = futures[future]
                try:
                    completion = future.result()
                except _Transient as exc:
                    failures.append(f"{rid}#{sample_idx}: {exc}")
                    log.warning("giving up on %s#%d after %d retries: %s", rid, sample_idx, self.max_retries, exc)
                else:
                    results.add(completion)
                bar.advance(task)
        if len(self.urls) > 1:
            log.info("fleet: %s", "; ".join(f"{e['url']} {e['requests']} requests, {e['transient_errors']} "
                                            f"transient errors" for e in self.fleet.stats()))
        if failures:
            raise EngineError(
                f"{len(failures)} of {len(work)} request(s) failed after {self.max_retries} retries "
                f"(first: {failures[0]}); {len(results)} finished ones are stored — rerun with --resume"
            )
        return results

    def close(self) -> None:
        self._client.close()

    # -- one request with retries -----------------------------------------------------------------
    def _one(self, request: Request, sample_idx: int, params: SamplingParams) -> Completion:
        body = self._body(request, sample_idx, params)
        path = "/chat/completions" if request.messages is not None else "/completions"
        attempt = 0
        while True:
            try:
                return self._post(path, body, request.id, sample_idx)
            except _Transient as exc:
                if attempt >= self.max_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                log.debug("retry %d for %s#%d in %.2fs: %s", attempt + 1, request.id, sample_idx, delay, exc)
                time.sleep(delay)
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))

    def _body(self, request: Request, sample_idx: int, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": 1,
            "seed": params.seed + sample_idx,
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = params.stop
        if request.messages is not None:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        body.update(self.extra_body)
        return body

    def _post(self, path: str, body: dict[str, Any], request_id: str, sample_idx: int) -> Completion:
        endpoint = self.fleet.acquire()
        healthy: bool | None = False
        try:
            completion = self._post_to(endpoint.url, path, body, request_id, sample_idx)
            healthy = True
            return completion
        except _Transient as exc:
            healthy = None if exc.status == 429 else False
            raise
        finally:
            self.fleet.release(endpoint, healthy)

    def _post_to(self, url: str, path: str, body: dict[str, Any], request_id: str, sample_idx: int) -> Completion:
        import httpx

        with self._lock:
            self.requests_made += 1
        try:
            response = self._client.post(url + path, content=json.dumps(body))
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if response.status_code in RETRY_STATUS:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")),
                             response.status_code)
        if response.status_code >= 400:
            # A permanent refusal (bad request, auth, context too long): record it, do not retry.
            return Completion.build(
                request_id, sample_idx, "", "error", None, None, model=self.model,
                error=f"HTTP {response.status_code}: {response.text[:500]}",
            )
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            if "message" in choice:
                message = choice["message"]
                text = message.get("content") or ""
                reasoning = message.get("reasoning_content") or message.get("reasoning")
            else:
                text, reasoning = choice["text"], None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Transient(f"malformed response body ({type(exc).__name__}: {exc})") from None
        return Completion.build(
            request_id, sample_idx, text, choice.get("finish_reason") or "stop",
            usage.get("prompt_tokens"), usage.get("completion_tokens"), model=self.model,
            reasoning_content=reasoning,
        )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return min(600.0, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(600.0, max(0.0, when.timestamp() - time.time()))


def is_loopback(url: str | Sequence[str]) -> bool:
    """True when every server named (one URL, a list, or URLs joined by commas) is on loopback."""
    urls = url.split(",") if isinstance(url, str) else list(url)
    if len(urls) != 1:
        return bool(urls) and all(is_loopback(u.strip()) for u in urls)
    host = urlparse(urls[0].strip()).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
