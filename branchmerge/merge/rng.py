"""torch's CPU Bernoulli stream, drawn about twice as fast as ``torch.bernoulli`` (same bits).

mergekit's DARE mask is ``torch.bernoulli(full_like(delta, density))`` on torch's CPU generator
(MT19937). On CPU each element takes one 32-bit output ``r`` and is 1 where
``(r & 0xFFFFFF) * 2**-24 < p`` (the float uniform from 24 bits). ``randint(0, 2**24)`` takes one
32-bit output per element too and returns ``r % 2**24``, the same 24 bits, through a faster
kernel; ``r24 < p * 2**24`` is the same comparison exactly (both sides are exact in float64).
Blocks of 1M keep the scratch small; the stream is consumed in element order all the same.

``stream_matches`` checks this against ``torch.bernoulli`` at first use (sizes across the
624-word refills, several probabilities, the generator state afterwards); where it does not hold
(another torch version's kernels), callers use ``torch.bernoulli``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

_BLOCK = 1 << 20


def bernoulli_mask(gen: torch.Generator, p: float, n: int, packed: bool = False) -> torch.Tensor | np.ndarray:
    """``torch.bernoulli(torch.full((n,), p), generator=gen).bool()`` for a CPU ``gen``; ``p`` is the
    probability as stored in the work dtype (e.g. bf16-rounded), given as a Python float.

    ``packed``: the mask as ``np.packbits`` bits (1/8 of the memory; ``unpack`` restores it), for
    masks that wait while others are drawn."""
    threshold = math.ceil(p * float(1 << 24))  # integer r24 < t  <=>  r24 < ceil(t)
    out = np.empty(-(-n // 8), dtype=np.uint8) if packed else torch.empty(n, dtype=torch.bool)
    r24 = torch.empty(min(n, _BLOCK), dtype=torch.int32)
    bits = torch.empty(min(n, _BLOCK), dtype=torch.bool) if packed else None
    for start in range(0, n, _BLOCK):
        part = r24[: min(_BLOCK, n - start)]
        part.random_(0, 1 << 24, generator=gen)
        if bits is None:
            torch.lt(part, threshold, out=out[start : start + part.numel()])
        else:  # _BLOCK is a multiple of 8: each block fills whole bytes
            chunk = torch.lt(part, threshold, out=bits[: part.numel()])
            out[start // 8 : -(-(start + part.numel()) // 8)] = np.packbits(chunk.numpy())
    return out


def unpack(mask: torch.Tensor | np.ndarray, n: int) -> torch.Tensor:
    """A ``bernoulli_mask`` result as a bool tensor of ``n`` elements."""
    if isinstance(mask, torch.Tensor):
        return mask
    return torch.from_numpy(np.unpackbits(mask, count=n).view(np.bool_))


@functools.cache
def stream_matches() -> bool:
    """Whether ``bernoulli_mask`` reproduces this torch build's CPU ``bernoulli`` bit for bit."""
    try:
        for dtype in (torch.bfloat16, torch.float32):
            for p in (0.5, 0.7, 0.1):
                a, b = torch.Generator().manual_seed(1234), torch.Generator().manual_seed(1234)
                torch.rand(5, generator=a), torch.rand(5, generator=b)
                for n in (1, 623, 625, 5000, 70_001):
                    prob = torch.full((n,), p, dtype=dtype)
                    expect = torch.bernoulli(prob, generator=a).bool()
                    got = bernoulli_mask(b, float(prob[0]), n)
                    if not torch.equal(expect, got):
                        return False
                if not torch.equal(a.get_state(), b.get_state()):
                    return False
        return True
    except Exception:  # noqa: BLE001 - any surprise means: use torch.bernoulli
        return False
