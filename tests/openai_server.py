"""A real chat-completions server on 127.0.0.1 for tests, with injectable faults.

It speaks the OpenAI protocol over HTTP (``POST /v1/chat/completions`` and ``/v1/completions``).
``faults`` maps a prompt (the last user message) to the faults its first requests meet, in order:
``"429"`` (with ``Retry-After``), ``"500"``, ``"400"`` (permanent), ``"stall"`` (sleep past the
client's time-out), ``"malformed"`` (invalid JSON body), ``"drop"`` (close the connection without
an answer). After its faults a prompt gets the ``responder``'s answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, Any]]


def default_responder(body: dict[str, Any]) -> dict[str, Any]:
    prompt = _prompt_of(body)
    return {
        "content": f"The answer to {prompt!r} is \\boxed{{42}}.",
        "reasoning_content": f"Let me think about {prompt!r}.",
        "finish_reason": "stop",
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": 17,
    }


class PeakCounter:
    """Responders that count how many requests each named server holds at once (``peak[name]``)."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.peak: dict[str, int] = {}
        self.now: dict[str, int] = {}
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def responder(self, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def respond(body: dict[str, Any]) -> dict[str, Any]:
            with self.lock:
                self.now[name] = self.now.get(name, 0) + 1
                self.peak[name] = max(self.peak.get(name, 0), self.now[name])
            time.sleep(self.delay_s)
            with self.lock:
                self.now[name] -= 1
            return default_responder(body)

        return respond


def _prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        users = [m["content"] for m in body["messages"] if m.get("role") == "user"]
        return users[-1] if users else ""
    return body.get("prompt", "")


class ChatServer:
    def __init__(
        self,
        responder: Responder = default_responder,
        faults: dict[str, list[str]] | None = None,
        retry_after: float = 0.2,
        stall_s: float = 2.0,
    ) -> None:
        self.responder = responder
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.retry_after = retry_after
        self.stall_s = stall_s
        self.requests: Counter[str] = Counter()
        self.request_times: dict[str, list[float]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self, prompt: str) -> str | None:
        with self._lock:
            self.requests[prompt] += 1
            self.request_times.setdefault(prompt, []).append(time.monotonic())
            queue = self.faults.get(prompt)
            return queue.pop(0) if queue else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                fault = server._next_fault(_prompt_of(body))
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "stall":
                    time.sleep(server.stall_s)
                    self._send(200, b"{}")
                    return
                if fault == "429":
                    self._send(429, b'{"error": "rate limited"}', {"Retry-After": str(server.retry_after)})
                    return
                if fault in ("500", "400"):
                    self._send(int(fault), b'{"error": "injected"}')
                    return
                if fault == "malformed":
                    self._send(200, b'{"choices": [{"message": ')
                    return
                answer = server.responder(body)
                self._send(200, json.dumps(_wrap(body, answer)).encode())

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _wrap(body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    usage = {
        "prompt_tokens": answer["prompt_tokens"],
        "completion_tokens": answer["completion_tokens"],
        "total_tokens": answer["prompt_tokens"] + answer["completion_tokens"],
    }
    if "messages" in body:
        message = {"role": "assistant", "content": answer["content"]}
        if answer.get("reasoning_content") is not None:
            message["reasoning_content"] = answer["reasoning_content"]
        choice = {"index": 0, "message": message, "finish_reason": answer["finish_reason"]}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": answer["content"], "finish_reason": answer["finish_reason"]}
        obj = "text_completion"
    return {"id": "cmpl-test", "object": obj, "model": body.get("model"), "choices": [choice], "usage": usage}
