"""Decode LiveCodeBench private tests without trusting the downloaded bytes.

LiveCodeBench stores ``private_test_cases`` either as JSON or as base64 -> zlib -> pickle -> JSON.
A general ``pickle.loads`` on downloaded bytes runs whatever the pickle names (``os.system`` and
friends), so this unpickler admits only plain data: the opcodes for str, bytes, numbers, lists,
tuples, dicts and None need no class lookup at all, and ``find_class`` allows just the builtin
containers that older protocols build through a global (set, frozenset, bytearray). Anything
else raises ``UnsafePickleError``. Decompression is capped so a zlib bomb cannot exhaust memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from typing import Any

ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "bytearray"),
}
MAX_DECOMPRESSED = 1 << 30  # 1 GiB: the largest LCB test blobs are a few hundred MB


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than plain data."""


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return {"set": set, "frozenset": frozenset, "bytearray": bytearray}[name]
        raise UnsafePickleError(f"refusing to load {module}.{name}: only plain data is allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id: only plain data is allowed")


def safe_loads(data: bytes) -> Any:
    """``pickle.loads`` restricted to plain data."""
    return PlainDataUnpickler(io.BytesIO(data)).load()


def _inflate(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, limit)
    if inflater.unconsumed_tail:
        raise ValueError(f"decompressed test data exceeds {limit} bytes")
    return out + inflater.flush()


def decode_test_cases(value: Any, limit: int = MAX_DECOMPRESSED) -> list[dict[str, Any]]:
    """LiveCodeBench ``*_test_cases``: a list, JSON text, or base64(zlib(pickle(JSON text)))."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise ValueError(f"test cases must be a list or a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return []
    if text[0] in "[{":
        return _as_list(json.loads(text))
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"test cases are neither JSON nor base64 ({exc})") from None
    try:
        payload = safe_loads(_inflate(raw, limit))
    except zlib.error as exc:
        raise ValueError(f"test cases are not zlib-compressed ({exc})") from None
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    return _as_list(json.loads(payload) if isinstance(payload, str) else payload)


def _as_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("test cases must decode to a list of objects")
    return value
