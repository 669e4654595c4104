"""Selection instead of sorting: the same elements as argsort (ties included), the same order
statistics as sort, and arcee_fusion's two quantile-sampling rules against plain transcriptions."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from branchmerge.merge.methods import METHODS, Context
from branchmerge.merge.rng import bernoulli_mask, stream_matches, unpack
from branchmerge.merge.selection import magnitude_keys, order_statistics, sort_is_introsort, topk_mask


def _argsort_mask(delta: torch.Tensor, k: int) -> torch.Tensor:
    """mergekit's trim: ``argsort(|delta|.float(), descending=True)[:k]`` as a mask."""
    mask = torch.zeros(delta.numel(), dtype=torch.bool)
    mask[torch.argsort(delta.abs().reshape(-1).float(), descending=True)[:k]] = True
    return mask


def _cases(g: torch.Generator) -> list[torch.Tensor]:
    out = []
    for n in (1, 2, 15, 16, 17, 33, 300, 1000, 5000, 70_000):
        out.append(torch.randint(0, 3, (n,), generator=g).float())  # nearly all ties
        out.append(torch.randint(-40, 40, (n,), generator=g).float())  # signs share magnitudes
        sparse = (torch.randn(n, generator=g) * 0.01).bfloat16()
        sparse[torch.rand(n, generator=g) < 0.3] = 0  # untouched rows: a block of exact zeros
        out.append(sparse)
        out.append(torch.randn(n, generator=g).half())
        out.append(torch.randint(0, 7, (n,), generator=g).double())  # float64: compared as float32
    out.append(torch.arange(4000.0) // 3)  # sorted runs (pivot choice on ordered data)
    out.append((torch.arange(4000.0) // 5).flip(0))
    out.append(torch.zeros(3000))  # every element tied
    big = (torch.randn(300_000, generator=g) * 0.01).bfloat16()  # several index blocks per range
    big[torch.rand(300_000, generator=g) < 0.3] = 0
    out.append(big)
    return out


def test_sort_is_introsort_on_this_build() -> None:
    # not a speed check: the selection path is only taken when this holds, else argsort runs
    assert isinstance(sort_is_introsort(), bool)


@pytest.mark.skipif(not sort_is_introsort(), reason="this torch build does not sort with std::sort")
@pytest.mark.parametrize("pack_above", [1 << 24, 0])  # 0: every mask waits bit-packed, as the largest tensors' do
def test_topk_mask_is_argsorts_selection_including_ties(pack_above: int, monkeypatch) -> None:
    monkeypatch.setattr("branchmerge.merge.selection.PACK_ABOVE", pack_above)
    g = torch.Generator().manual_seed(0)
    checked = 0
    for w in _cases(g):
        n = w.numel()
        for k in sorted({1, 2, n // 3, n // 2, n - 1, n, int(torch.randint(1, n + 1, (1,), generator=g))}):
            if k < 1:
                continue
            got = topk_mask(magnitude_keys(w).clone(), k)
            expect = _argsort_mask(w, k)
            if got is None:  # heapsort fallback: the caller sorts
                continue
            assert torch.equal(got, expect), (w.dtype, n, k)
            assert int(got.sum()) == min(k, n)
            checked += 1
    assert checked > 200


@pytest.mark.skipif(not sort_is_introsort(), reason="this torch build does not sort with std::sort")
@pytest.mark.parametrize("special", ["none", "cancelling", "inf", "nan"])
def test_ties_kernel_uses_the_same_elements_as_argsort(special: str) -> None:
    """The whole compat TIES kernel against a plain transcription of mergekit's (argsort) one,
    also where deltas cancel (sum 0, signed zeros), are infinite or NaN."""
    g = torch.Generator().manual_seed(3)
    base = (torch.randn(300, 257, generator=g) * 0.02).bfloat16()
    fts = []
    for _ in range(2):
        noise = torch.randn(300, 257, generator=g) * 0.004
        noise[torch.rand(300, generator=g) < 0.3] = 0
        fts.append((base.float() + noise).bfloat16())
    if special == "cancelling":  # equal and opposite deltas: the elected sign comes from a zero sum
        fts[1][:100] = (2 * base[:100].float() - fts[0][:100].float()).bfloat16()
    elif special in ("inf", "nan"):
        value = float("inf") if special == "inf" else float("nan")
        fts[0][5, :40], fts[1][5, 20:60], fts[1][7, :3] = value, -value, value
    weights, density = [0.6, 0.4], 0.5
    ours = METHODS["ties"].kernel([base, *fts], 0, dict(METHODS["ties"].shared), [{}, *({"weight": w, "density": density} for w in weights)], Context())
    d = base.new_empty((2, *base.shape))  # mergekit 0.1.5's generalized task arithmetic, verbatim ops
    for i, ft in enumerate(fts):
        delta = ft - base
        k = max(1, int(density * delta.numel()))
        d[i] = delta * _argsort_mask(delta, k).reshape(delta.shape).to(delta.dtype)
    w = torch.tensor(weights, dtype=d.dtype).reshape(-1, 1, 1)
    d.mul_(w)
    sign = d.sign().to(d.dtype)
    mask = sign == (d.sum(dim=0) >= 0).to(d.dtype) * 2 - 1
    mixed = (d * mask).sum(dim=0)
    div = (w * mask).sum(dim=0)
    div[div == 0] = 1
    mixed /= div
    expect = (base + mixed).to(base.dtype)
    assert torch.equal(ours.view(torch.int16), expect.view(torch.int16))
    assert special != "nan" or bool(ours.isnan().any())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_order_statistics_with_many_ties(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    flat = torch.randint(0, 5, (100_001,), generator=g).to(dtype)
    pos = torch.tensor([0, 25_000, 50_000, 75_000, 100_000])
    assert torch.equal(order_statistics(flat, pos), torch.sort(flat).values[pos])


# --- arcee_fusion quantile sampling ------------------------------------------------------------


def _reference_fusion(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator, with_replacement: bool) -> torch.Tensor:
    """Plain full-tensor transcription: mergekit 0.1.5 (randint, one sample) or the TinyR1
    release's vendored mergekit (randperm, one sample for the median, another for q1/q3)."""
    diff = (b - a).abs()
    p = F.softmax(b, dim=-1) + 1e-8
    q = F.softmax(a, dim=-1) + 1e-8
    imp = diff * torch.sum(p * torch.log(p / q), dim=-1).unsqueeze(-1)
    flat = imp.view(-1)

    def quantiles(qs: list[float], sample: torch.Tensor) -> torch.Tensor:
        s, _ = torch.sort(sample)
        return s[(torch.tensor(qs) * (s.numel() - 1)).long()]

    if with_replacement:
        q1, med, q3 = quantiles([0.25, 0.5, 0.75], flat[torch.randint(flat.numel(), (1_000_000,), generator=gen)])
    else:
        med = quantiles([0.5], flat[torch.randperm(flat.numel(), generator=gen)[:1_000_000]])[0]
        q1, q3 = quantiles([0.25, 0.75], flat[torch.randperm(flat.numel(), generator=gen)[:1_000_000]])
    thr = med + 1.5 * (q3 - q1)
    return a + (b - a) * (imp >= thr).float()


@pytest.mark.parametrize("with_replacement", [True, False])
def test_fusion_sampling_matches_its_reference(with_replacement: bool) -> None:
    g = torch.Generator().manual_seed(5)
    a = torch.randn(1100, 1000, generator=g)  # 1.1M elements: the sampled path
    b = a + 0.05 * torch.randn(1100, 1000, generator=g)
    gen = torch.Generator().manual_seed(11)
    ctx = Context(rng=lambda: contextlib.nullcontext(gen))
    shared = dict(METHODS["arcee_fusion"].shared) | {"with_replacement": with_replacement}
    ours = METHODS["arcee_fusion"].kernel([a, b], 0, shared, [{}, {}], ctx)
    ref_gen = torch.Generator().manual_seed(11)
    expect = _reference_fusion(a, b, ref_gen, with_replacement)
    assert torch.equal(ours, expect)
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # the stream advanced by the same draws


def test_fusion_sampling_rules_differ_and_default_is_mergekit_0_1_5() -> None:
    assert METHODS["arcee_fusion"].shared["with_replacement"] is True
    g = torch.Generator().manual_seed(6)
    a = torch.randn(1200, 1000, generator=g)
    b = a + 0.05 * torch.randn(1200, 1000, generator=g)
    thresholds = {}
    for wr in (True, False):
        gen = torch.Generator().manual_seed(0)
        ctx = Context(rng=lambda gen=gen: contextlib.nullcontext(gen))
        METHODS["arcee_fusion"].kernel([a, b], 0, dict(METHODS["arcee_fusion"].shared) | {"with_replacement": wr}, [{}, {}], ctx)
        thresholds[wr] = ctx.stats["threshold"]
    assert thresholds[True] != thresholds[False]


# --- DARE's Bernoulli stream ---------------------------------------------------------------------


@pytest.mark.skipif(not stream_matches(), reason="this torch build's CPU generator layout differs: torch.bernoulli is used")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("packed", [False, True])
def test_bernoulli_mask_is_torchs_stream(dtype: torch.dtype, packed: bool) -> None:
    for seed, p, n in ((0, 0.7, 1), (1, 0.5, 624), (2, 0.3, 100_003), (3, 0.9, 1_300_000), (4, 0.5, 2_097_155)):
        a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        prob = torch.full((n,), p, dtype=dtype)
        expect = torch.bernoulli(prob, generator=a).bool()
        got = unpack(bernoulli_mask(b, float(prob[0]), n, packed=packed), n)
        assert torch.equal(got, expect), (dtype, p, n)
        assert torch.equal(torch.rand(700, generator=a), torch.rand(700, generator=b))  # same place in the stream


def test_fusion_bf16_output_matches_the_float32_formula() -> None:
    """bf16 in and out: the narrow in-place path gives the bits of mergekit's float32 formula."""
    g = torch.Generator().manual_seed(8)
    a = (torch.randn(700, 300, generator=g) * 0.02).bfloat16()
    b = (a.float() + 0.004 * torch.randn(700, 300, generator=g)).bfloat16()
    a[0, :4] = torch.tensor([0.0, -0.0, -0.0, 3.0])
    b[0, :4] = torch.tensor([1e-3, 2.0, -0.0, 3.0])  # signed zeros on both sides of the mask
    ours = METHODS["arcee_fusion"].kernel([a, b], 0, dict(METHODS["arcee_fusion"].shared), [{}, {}], Context(out_dtype=torch.bfloat16))
    gen = torch.Generator()  # unused: 210k elements take the exact (unsampled) path
    expect = _reference_fusion(a, b, gen, True).to(torch.bfloat16)
    assert torch.equal(ours.view(torch.int16), expect.view(torch.int16))
