"""torch's CPU Bernoulli stream, drawn by numpy's MT19937 (same bits, about twice as fast).

mergekit's DARE mask is ``torch.bernoulli(full_like(delta, density))`` on torch's default CPU
generator, a standard MT19937. On CPU each element takes one 32-bit output ``r`` and is 1 where
``(r & 0xFFFFFF) * 2**-24 < p`` (the float uniform from 24 bits). numpy's ``MT19937`` is the same
engine, so the generator state (624 words and the read position, in torch's ``get_state`` layout)
is handed to numpy, ``n`` outputs are drawn there, and the advanced state is written back:
torch's generator ends exactly where ``torch.bernoulli`` would have left it.

``stream_matches`` checks this against ``torch.bernoulli`` at first use (sizes across the
624-word refills, several probabilities, the state afterwards); where it does not hold (another
torch layout or kernel), callers use ``torch.bernoulli``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

_N = 624
_STATE_BYTES = 5056  # CPUGeneratorImplState: seed u64, left i32, seeded i32, next u64, state u64[624], normal cache


def _fields(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return raw[8:12].view(np.int32), raw[16:24].view(np.uint64), raw[24 : 24 + _N * 8].view(np.uint64)


def bernoulli_mask(gen: torch.Generator, p: float, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.bernoulli(torch.full((n,), p), generator=gen).bool()`` for a CPU ``gen``; ``p`` is the
    probability as stored in the work dtype (e.g. bf16-rounded), given as a Python float."""
    raw = gen.get_state().numpy().copy()
    left, nxt, key = _fields(raw)
    mt = np.random.MT19937()
    mt.state = {"bit_generator": "MT19937", "state": {"key": key.astype(np.uint32), "pos": _N + 1 - int(left[0])}}
    words = np.random.Generator(mt).integers(0, 1 << 32, size=n, dtype=np.uint32)  # one output each
    bits = torch.from_numpy(words.view(np.int32))
    bits.bitwise_and_(0xFFFFFF)
    threshold = p * float(1 << 24)  # exact: r24 * 2**-24 < p  <=>  r24 < p * 2**24
    out = torch.lt(bits, threshold, out=out if out is not None else torch.empty(n, dtype=torch.bool))
    state = mt.state["state"]
    key[:] = state["key"].astype(np.uint64)
    left[0] = _N + 1 - int(state["pos"])
    nxt[0] = int(state["pos"]) % _N
    gen.set_state(torch.from_numpy(raw))
    return out


@functools.cache
def stream_matches() -> bool:
    """Whether ``bernoulli_mask`` reproduces this torch build's CPU ``bernoulli`` bit for bit."""
    try:
        if torch.Generator().get_state().numel() != _STATE_BYTES:
            return False
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
