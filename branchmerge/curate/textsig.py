"""Word-level text signatures shared by near-duplicate removal and decontamination.

Text is lower-cased and split into ``\\w+`` words; each word gets a stable 32-bit id (CRC-32, so
the same text hashes the same in every process and on resume, unlike Python's salted ``hash``),
and runs of ``n`` consecutive word ids are folded into one 64-bit n-gram hash with numpy.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant of the polynomial n-gram hash


class WordIds:
    """Text -> array of stable word ids, with a cache (vocabularies are small next to corpora)."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, text: str) -> np.ndarray:
        cache = self._cache
        ids = []
        for word in _WORD.findall(text.lower()):
            value = cache.get(word)
            if value is None:
                value = cache[word] = zlib.crc32(word.encode("utf-8"))
            ids.append(value)
        return np.asarray(ids, dtype=np.uint64)


def normalized(text: str) -> str:
    """The text an exact-duplicate check compares: lower-case words joined by one space."""
    return " ".join(_WORD.findall(text.lower()))


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of ``n`` word ids; a text shorter than ``n`` gives one hash of it all."""
    if len(ids) == 0:
        return np.zeros(1, dtype=np.uint64)
    n = min(n, len(ids))
    count = len(ids) - n + 1
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _MULT + ids[j : j + count] + np.uint64(j + 1)
        h ^= h >> np.uint64(29)
    return h
