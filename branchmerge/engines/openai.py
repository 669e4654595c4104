"""Any OpenAI-compatible chat server: DeepSeek's API, ``vllm serve``, SGLang, a provider.

One HTTP request per (prompt, sample), so every sample has exact token counts from ``usage`` and
is stored the moment it finishes: an interrupted run resumes without paying for a request twice.
Transient faults (429, 5xx, time-outs, dropped connections, malformed bodies) are retried with
exponential backoff and full jitter, honouring ``Retry-After``; other 4xx answers are permanent and
are recorded as ``finish_reason="error"``. The API key is read from an environment variable and is
never logged or written anywhere.
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
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 600.0,
        max_retries: int = 8,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        import httpx

        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
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
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._lock = threading.Lock()
        self.requests_made = 0

    def info(self) -> dict[str, Any]:
        import httpx

        return {"engine": self.name, "model": self.model, "base_url": self.base_url, "httpx": httpx.__version__}

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
        with progress() as bar, ThreadPoolExecutor(self.concurrency) as pool:
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
        import httpx

        with self._lock:
            self.requests_made += 1
        try:
            response = self._client.post(self.base_url + path, content=json.dumps(body))
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if response.status_code in RETRY_STATUS:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")))
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


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
