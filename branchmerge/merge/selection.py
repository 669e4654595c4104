"""Order statistics and top-k selection that reproduce torch's CPU sort without doing it.

``order_statistics`` returns values at sorted positions (tie order cannot matter there).

``topk_mask`` returns the set ``torch.argsort(w, descending=True)[:k]`` selects, including
*which* of the elements tied at the cut value are taken. torch's unstable CPU sort is
libstdc++'s ``std::sort`` (introsort: median-of-3 pivot moved to the front, Hoare partition
``__unguarded_partition``, ranges of <= 16 left to a final stable insertion sort, heapsort once
the depth limit ``2 * floor(log2(n))`` runs out). Which tied elements end up in front of position
``k`` depends only on the partitions whose range contains the boundary between positions
``k - 1`` and ``k``: every other range is sorted in place and never exchanges elements across
that boundary again. So we follow that one chain of partitions, quickselect-style, each step
vectorised over its range (Hoare's swaps pair the i-th "stop" from the left with the i-th from
the right, so the whole step is two masks, a count and a scatter), and finish the last <= 16
elements with a stable sort. Work is O(n) instead of O(n log n), scratch is a few bytes per
element instead of 12 (float32 keys + int64 indices). A heapsort range on the chain (never seen
in practice) falls back to the real ``argsort``. ``sort_is_introsort`` checks at first use that
this torch build sorts that way (builds using x86-simd-sort would not), else callers use argsort.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import torch

_LEAF = 16  # libstdc++ _S_threshold
PACK_ABOVE = 1 << 24  # elements: larger masks wait bit-packed while the partitions run


def order_statistics(flat: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``sort(flat)[positions]`` without the full sort.

    Values at given sorted positions do not depend on how ties are ordered, so any selection
    method gives the same bits. 16-bit floats: a histogram of their 65536 bit patterns mapped
    to an order-preserving key; other CPU dtypes: numpy's O(n) partition. NaNs (sorted last by
    torch) and accelerators take the plain sort.
    """
    if flat.device.type != "cpu" or bool(torch.isnan(flat).any()):
        return torch.sort(flat).values[positions.to(flat.device)]
    if flat.element_size() == 2:
        bits = flat.view(torch.int16).to(torch.int32) & 0xFFFF
        key = torch.where(bits >= 0x8000, 0xFFFF - bits, bits + 0x8000)  # negative floats reversed
        cum = torch.cumsum(torch.bincount(key, minlength=1 << 16), 0)
        k = torch.searchsorted(cum, positions, right=True)
        out = torch.where(k >= 0x8000, k - 0x8000, 0xFFFF - k)
        return torch.where(out >= 0x8000, out - 0x10000, out).to(torch.int16).view(flat.dtype)

    pos = positions.tolist()
    part = np.partition(flat.numpy(), pos)
    return torch.from_numpy(part[pos].copy())


def magnitude_keys(delta: torch.Tensor) -> torch.Tensor | None:
    """Flat integer keys of ``|delta|`` that order like ``|delta|.float()``; None if there are NaNs.

    Non-negative IEEE floats order like their bit patterns (``abs`` clears the sign of -0.0), and
    a NaN's pattern is above infinity's, so one integer max finds them.
    float64 is rounded to float32 first, as the sort this stands in for compares float32 copies.
    """
    w = delta.abs().reshape(-1)
    if w.dtype == torch.float64:
        w = w.float()
    int_type = {2: torch.int16, 4: torch.int32}[w.element_size()]
    keys = w.view(int_type)
    inf = torch.tensor(float("inf"), dtype=w.dtype).view(int_type)
    if keys.numel() and bool(keys.max() > inf):
        return None
    return keys


def topk_mask(keys: torch.Tensor, k: int) -> torch.Tensor | None:
    """Boolean mask of the elements ``argsort(keys, descending=True)[:k]`` selects (CPU ``std::sort``).

    ``keys`` is 1-D (see ``magnitude_keys``); it is consumed (reordered in place by the partitions
    followed). None if the sort would fall back to heapsort on the way (the caller then sorts).
    Above ``PACK_ABOVE`` elements the mask of the keys above the cut waits as one bit per element
    while the partitions run, so the largest tensor's peak holds 1/8 of a byte per element for it.
    """
    n = keys.numel()
    if k >= n or k <= 0:
        return torch.full((n,), k > 0, dtype=torch.bool)
    cut = kth_largest(keys, k)
    flat = keys.numpy()  # numpy's compares and counts: 2x torch's on one core
    mask = torch.from_numpy(flat > cut)
    ties = flat == cut
    need = k - int(np.count_nonzero(mask.numpy()))
    if need == int(np.count_nonzero(ties)):
        return mask.logical_or_(torch.from_numpy(ties))
    del ties
    packed = np.packbits(mask.numpy()) if n > PACK_ABOVE else None
    if packed is not None:
        del mask
    chosen = _chain(keys, k, cut)
    if chosen is None:
        return None
    if packed is not None:
        mask = torch.from_numpy(np.unpackbits(packed, count=n).view(np.bool_))
    mask[chosen] = True
    return mask


def kth_largest(keys: torch.Tensor, k: int) -> int:
    """The k-th largest of integer ``keys`` (1-based)."""
    n = keys.numel()
    if keys.dtype == torch.int16:
        counts = torch.bincount(keys, minlength=1 << 15)  # keys are >= 0
        above = torch.cumsum(counts.flip(0), 0)  # elements >= each value, largest value first
        return (1 << 15) - 1 - int(torch.searchsorted(above, k))

    return int(np.partition(keys.numpy(), n - k)[n - k])


_BLOCK = 1 << 16


class _Stops:
    """Counts of the Hoare scans' stop elements in a range, for locating the i-th one quickly.

    numpy on the range's memory (no copy): its compares, counts and ``flatnonzero`` are 2-3x
    faster than torch's on one core, and the merge runs one tensor per core anyway."""

    def __init__(self, body: torch.Tensor, lo: int, hi: int) -> None:
        self.body = body.numpy()
        n = self.body.size
        self.lo, self.hi = lo, hi
        self.step = max(_BLOCK, -(-n // 64))
        left, right = [0], [0]
        for start in range(0, n, self.step):
            part = self.body[start : start + self.step]
            left.append(int(np.count_nonzero(part <= lo)))
            right.append(int(np.count_nonzero(part >= hi)))
        self.left = np.cumsum(left)  # left stops before each block start
        self.right = np.cumsum(right)
        self.n_left, self.n_right = int(self.left[-1]), int(self.right[-1])

    def mask(self, start: int, stop: int, left: bool) -> np.ndarray:
        part = self.body[start:stop]
        return part <= self.lo if left else part >= self.hi

    def nth(self, i: int, left: bool) -> int:
        """Body position of the i-th (0-based, from the left) left or right stop."""
        cum = self.left if left else self.right
        b = int(np.searchsorted(cum, i, side="right")) - 1
        start = b * self.step
        where = np.flatnonzero(self.mask(start, start + self.step, left))
        return start + int(where[i - int(cum[b])])

    def swaps(self) -> int:
        """Number of exchanges: the largest min(left stops before j, right stops from j) over j."""
        step = self.step
        before = self.left  # at block starts 0..nb
        after = self.n_right - self.right
        t = int(np.count_nonzero(before < after))  # first block start where the scans have met
        if t == 0:
            return 0
        b = t - 1  # the crossing lies inside block b
        start = b * step
        stop = min(start + step, self.body.size)
        lcum = int(before[b]) + np.cumsum(self.mask(start, stop, True))
        rcum = int(after[b]) - np.cumsum(self.mask(start, stop, False))
        # at j = start + i + 1: left stops before j = lcum[i]; right stops from j = rcum[i]
        best = np.minimum(lcum, rcum).max()
        edge = min(int(before[b]), int(after[b]))
        return max(int(best), edge)

    def exchanges(self, m: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The ``m`` exchanges of the Hoare partition as (left stop, right stop) body positions,
        a block at a time: the i-th left stop from the left pairs with the i-th right stop from
        the right. Streamed, so the scratch is a block, not ``m`` positions (a quarter of the range)."""
        lefts = self._stream(m, left=True)
        rights = self._stream(m, left=False)
        lbuf, rbuf = next(lefts, None), next(rights, None)
        while lbuf is not None and rbuf is not None:
            take = min(len(lbuf), len(rbuf))
            yield torch.from_numpy(lbuf[:take]), torch.from_numpy(rbuf[:take])
            lbuf = lbuf[take:] if take < len(lbuf) else next(lefts, None)
            rbuf = rbuf[take:] if take < len(rbuf) else next(rights, None)

    def _stream(self, m: int, left: bool) -> Iterator[np.ndarray]:
        """Positions of the first ``m`` left stops (ascending) or the last ``m`` right stops
        (descending), one block at a time."""
        starts = range(0, self.body.size, self.step)
        for start in starts if left else reversed(starts):
            if m <= 0:
                return
            pos = np.flatnonzero(self.mask(start, start + self.step, left))
            if not left:
                pos = pos[::-1]
            pos = pos[:m] + start
            m -= len(pos)
            if len(pos):
                yield pos


def _chain(keys: torch.Tensor, k: int, cut: int) -> torch.Tensor | None:
    """Original indices of the elements equal to ``cut`` that ``std::sort`` puts before position ``k``.

    Follows the partitions whose range holds the boundary between positions k - 1 and k. The
    top range is ``keys`` itself (index = position, but for the one exchange the median-of-3
    made there); a deeper range is a view of the same keys with its own array of original
    indices beside it (int32 while they fit), both moved by the same gathers and scatters, so
    the scans compare 2- or 4-byte keys only.
    """
    n = keys.numel()
    depth = 2 * (n.bit_length() - 1)
    index_dtype = torch.int32 if n < 2**31 else torch.int64
    first = 0  # absolute position of vals[0]
    vals: torch.Tensor = keys
    idx: torch.Tensor | None = None  # None on the top range
    swap0 = 0
    taken: list[torch.Tensor] = []

    def indices(start: int, stop: int) -> torch.Tensor:
        """Original indices of vals[start:stop] (a view below the top, a new array on it)."""
        if idx is not None:
            return idx[start:stop]
        out = torch.arange(start, stop, dtype=index_dtype)
        if swap0:
            if start <= 0 < stop:
                out[0 - start] = swap0
            if start <= swap0 < stop:
                out[swap0 - start] = 0
        return out

    def index_at(pos: torch.Tensor) -> torch.Tensor:
        """Original indices of vals at positions ``pos``."""
        if idx is not None:
            return idx.index_select(0, pos)
        out = pos.to(index_dtype)
        if swap0:
            out = torch.where(pos == 0, swap0, torch.where(pos == swap0, 0, out)).to(index_dtype)
        return out

    def ties_in(start: int, stop: int) -> torch.Tensor:
        pos = torch.from_numpy(np.flatnonzero(vals[start:stop].numpy() == cut)).add_(start)
        return index_at(pos).to(torch.int64)

    while True:
        size = vals.numel()
        if size <= _LEAF:
            key, ids = vals.tolist(), indices(0, size).tolist()
            order = sorted(range(size), key=lambda i: -key[i])  # stable, descending
            taken.append(torch.tensor([ids[i] for i in order[: k - first] if key[i] == cut], dtype=torch.int64))
            return torch.cat(taken)
        if depth == 0:
            return None
        depth -= 1
        # __move_median_to_first(first, first + 1, mid, last - 1)
        a, b, c = 1, size // 2, size - 1
        va, vb, vc = (int(vals[i]) for i in (a, b, c))
        if va > vb:
            s = b if vb > vc else (c if va > vc else a)
        else:
            s = a if va > vc else (c if vb > vc else b)
        if s:
            vals[[0, s]] = vals[[s, 0]]
            if idx is None:
                swap0 = s
            else:
                idx[[0, s]] = idx[[s, 0]]
        pivot = int(vals[0])
        body = vals[1:]
        # left scan stops where not (x > pivot); right scan stops where not (pivot > x)
        stops = _Stops(body, pivot, pivot)
        m = stops.swaps()
        l_last = stops.nth(m - 1, True) if m else -1  # body positions
        r_last = stops.nth(stops.n_right - m, False) if m else size - 1
        l_next = stops.nth(m, True) if m < stops.n_left else size
        cut_pos = 1 + (l_next if m == 0 else min(l_next, r_last))
        boundary = k - first
        # the partitioned side that holds the boundary: the exchanges bring the other side's stops
        # into it (the stops it gives away are not read again); reads and writes never overlap
        if boundary <= cut_pos:
            new_vals, new_idx = vals[:cut_pos], indices(0, cut_pos)
            for li, ri in stops.exchanges(m):
                dst = li + 1
                moved = index_at(ri + 1)
                new_vals.index_copy_(0, dst, body.index_select(0, ri))
                new_idx.index_copy_(0, dst, moved)
            if boundary == cut_pos:
                vals, idx, swap0 = new_vals, new_idx, 0
                taken.append(ties_in(0, cut_pos))
                return torch.cat(taken)
        else:
            # ties in the left part [0, cut_pos) join the selection
            if pivot == cut:
                taken.append(ties_in(0, 1))
            if cut > pivot:
                taken.append(ties_in(1, l_last + 2))
            taken.append(ties_in(l_last + 2, cut_pos))
            if cut >= pivot and m:
                taken.append(ties_in(r_last + 1, size))
            new_vals, new_idx = vals[cut_pos:], indices(cut_pos, size)
            for li, ri in stops.exchanges(m):
                dst = ri + (1 - cut_pos)
                moved = index_at(li + 1)
                new_vals.index_copy_(0, dst, body.index_select(0, li))
                new_idx.index_copy_(0, dst, moved)
            first += cut_pos
        vals, idx, swap0 = new_vals, new_idx, 0


@functools.cache
def sort_is_introsort() -> bool:
    """Whether this torch build's unstable CPU sort is the ``std::sort`` that ``topk_mask`` mirrors."""
    g = torch.Generator().manual_seed(12345)
    for n, levels in ((300, 3), (5000, 7), (70_000, 40)):
        w = torch.randint(0, levels, (n,), generator=g).float()
        for k in (1, n // 3, n // 2, n - 1):
            expect = torch.zeros(n, dtype=torch.bool)
            expect[torch.argsort(w, descending=True)[:k]] = True
            got = topk_mask(w.view(torch.int32).clone(), k)
            if got is None or not torch.equal(got, expect):
                return False
    return True
