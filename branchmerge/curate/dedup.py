"""Exact and near-duplicate removal of problems.

Exact: the same normalized text (lower-case words). Near: MinHash over word 5-gram shingles with
banded LSH, implemented here with numpy: ``perms`` multiply-shift hash functions
``((a*x + b) mod 2**64) >> 32`` (random odd ``a``) over 32-bit shingle hashes give the signature; documents that agree
on every row of at least one band are candidates, and a candidate counts as a duplicate only when
its estimated Jaccard similarity (the share of equal signature values) with an earlier document
is at least the threshold. The earliest document of every group is kept, so the result does not
depend on anything but the input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from branchmerge.curate.textsig import WordIds, ngram_hashes, normalized

_SHIFT = np.uint64(32)
_CHUNK = 1 << 16  # shingles per vectorised block: perms x chunk uint64 values in memory


@dataclass(frozen=True)
class Duplicate:
    kept: int  # index of the document that stays
    kind: str  # "exact" | "near"
    similarity: float


def lsh_bands(perms: int, threshold: float) -> tuple[int, int]:
    """(bands, rows) with bands*rows == perms whose LSH threshold (1/b)**(1/r) is the highest <= threshold."""
    options = [(b, perms // b) for b in range(1, perms + 1) if perms % b == 0]
    below = [o for o in options if (1 / o[0]) ** (1 / o[1]) <= threshold]
    return max(below, key=lambda o: (1 / o[0]) ** (1 / o[1])) if below else options[-1]


class MinHasher:
    def __init__(self, perms: int = 128, shingle_words: int = 5, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.perms = perms
        self.shingle_words = shingle_words
        self.a = rng.integers(0, np.iinfo(np.uint64).max, size=perms, dtype=np.uint64, endpoint=True) | np.uint64(1)
        self.b = rng.integers(0, np.iinfo(np.uint64).max, size=perms, dtype=np.uint64, endpoint=True)
        self.words = WordIds()

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), perms)`` uint32 MinHash signatures."""
        shingles = []
        for text in texts:  # fold to 32-bit keys: multiply-add-shift is 2-universal for keys of half the word
            h = ngram_hashes(self.words(text), self.shingle_words)
            shingles.append((h ^ (h >> _SHIFT)) & np.uint64(0xFFFFFFFF))
        out = np.empty((len(texts), self.perms), dtype=np.uint32)
        start = 0
        while start < len(texts):  # blocks of whole documents of about _CHUNK shingles
            stop, size = start, 0
            while stop < len(texts) and (size == 0 or size + len(shingles[stop]) <= _CHUNK):
                size += len(shingles[stop])
                stop += 1
            block = np.concatenate(shingles[start:stop])
            offsets = np.cumsum([0] + [len(s) for s in shingles[start:stop - 1]])
            with np.errstate(over="ignore"):
                values = (self.a[:, None] * block[None, :] + self.b[:, None]) >> _SHIFT
            out[start:stop] = np.minimum.reduceat(values, offsets, axis=1).T.astype(np.uint32)
            start = stop
        return out


def find_duplicates(texts: Sequence[str], threshold: float = 0.8, perms: int = 128,
                    shingle_words: int = 5) -> dict[int, Duplicate]:
    """Map the index of every duplicate document to the earlier document it duplicates."""
    dups: dict[int, Duplicate] = {}
    first_of: dict[str, int] = {}
    unique: list[int] = []
    for i, text in enumerate(texts):
        key = normalized(text)
        if key in first_of:
            dups[i] = Duplicate(first_of[key], "exact", 1.0)
        else:
            first_of[key] = i
            unique.append(i)
    if threshold >= 1.0 or len(unique) < 2:
        return dups
    sig = MinHasher(perms, shingle_words).signatures([texts[i] for i in unique])
    bands, rows = lsh_bands(perms, threshold)
    parent = list(range(len(unique)))  # union-find over positions in ``unique``; the root is the earliest

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    best: dict[int, tuple[int, float]] = {}
    for band in range(bands):
        part = np.ascontiguousarray(sig[:, band * rows : (band + 1) * rows])
        _, inverse = np.unique(part.view(np.dtype((np.void, part.dtype.itemsize * rows))).ravel(),
                               return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
        for group in groups:
            if len(group) < 2:
                continue
            sims = (sig[group[1:]] == sig[group[0]]).mean(axis=1)
            for member, sim in zip(group[1:].tolist(), sims.tolist(), strict=True):
                if sim >= threshold:
                    a, b = root(int(group[0])), root(member)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                    if member not in best or sim > best[member][1]:
                        best[member] = (int(group[0]), sim)
    for pos in range(len(unique)):
        keep = root(pos)
        if keep != pos:
            dups[unique[pos]] = Duplicate(unique[keep], "near", round(best.get(pos, (keep, threshold))[1], 4))
    return dups
