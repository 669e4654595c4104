"""Merge methods: small functions of tensors, plus the registry the engine and config use.

Each kernel gets the input tensors already in the working dtype (in the model order of the
config), the index of the base input (or None), the shared parameters, the per-input parameters,
and a ``Context`` (mode, output dtype, random-number turn). It returns the merged tensor in the
output dtype.

``compat`` kernels follow mergekit 0.1.5's operation order exactly (working dtype, where the
float32 upcasts happen, the elements ``argsort`` top-k keeps, ties included, found by selection
(``selection.topk_mask``), the floor quantile rule, one block of random draws per tensor in
sorted-name order, DARE's Bernoulli stream drawn by ``rng.bernoulli_mask``), so the tensors come
out bit-identical on the same CPU. Elementwise parts are
computed in row blocks into the output buffer, which changes no bits but keeps float32 scratch
to one block. ``fast`` kernels may differ where stated in ``FAST_DEVIATION``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from branchmerge.merge.rng import bernoulli_mask, stream_matches, unpack
from branchmerge.merge.selection import (
    PACK_ABOVE,
    kth_largest,
    magnitude_keys,
    order_statistics,
    sort_is_introsort,
    topk_mask,
)

BLOCK_ELEMENTS = 1 << 20  # row-block size for elementwise work (elements)
FUSION_SAMPLE = 1_000_000  # mergekit's quantile sample size for arcee_fusion
_QUANTILES = (0.25, 0.5, 0.75)


@dataclass
class Context:
    """What a kernel needs besides tensors and parameters."""

    out_dtype: torch.dtype | None = None
    mode: str = "compat"
    rng: Callable[[], contextlib.AbstractContextManager[torch.Generator]] | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # per-tensor facts, e.g. fraction taken

    def generator(self) -> contextlib.AbstractContextManager[torch.Generator]:
        if self.rng is None:
            raise RuntimeError("this merge draws random numbers but no generator was provided")
        return self.rng()

    def cast(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.out_dtype is None else t.to(self.out_dtype)


Kernel = Callable[[list[torch.Tensor], "int | None", dict[str, Any], list[dict[str, Any]], Context], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """A merge method: its kernel, input contract and parameters (with defaults; None = required)."""

    name: str
    kernel: Kernel
    base: str  # "required" | "ignored"
    shared: dict[str, Any]
    per_input: dict[str, Any]
    per_input_on_base: bool = False  # whether the base also takes per-input parameters
    min_inputs: int = 1
    max_inputs: int | None = None
    draws: Callable[[dict[str, Any], list[dict[str, Any]], int], bool] = lambda s, p, n: False
    doc: str = ""


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def row_blocks(t: torch.Tensor) -> Iterator[slice]:
    """Slices over dim 0 that hold about ``BLOCK_ELEMENTS`` elements (whole tensor for 0/1-D)."""
    if t.dim() < 2 or t.shape[0] < 2:
        yield slice(None)
        return
    row = max(1, t[0].numel())
    step = max(2, BLOCK_ELEMENTS // row)  # >= 2 rows: a block never becomes a 1-output reduction
    n = t.shape[0]
    start = 0
    while start < n:
        stop = n if n - (start + step) < 2 else start + step
        yield slice(start, stop)
        start = stop


def as_numbers(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as 1/0 of ``dtype``: the values a bool operand is promoted to, through the
    uint8 cast (bool casts are not vectorised on CPU: 7x slower here)."""
    return mask.view(torch.uint8).to(dtype)


def _accum_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------
# linear


def linear(ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], ctx: Context) -> torch.Tensor:
    """Weighted average, accumulated in float32 (float64 for float64 inputs) like mergekit 0.1.5."""
    first = ts[0]
    acc = _accum_dtype(first)
    weights = torch.tensor([[p["weight"] for p in per]], dtype=acc, device=first.device)
    shape = (1,) * first.dim()
    coefs = [c.reshape(shape) for c in weights.unbind(1)]
    denom = weights.sum(dim=1).reshape(shape) if shared["normalize"] else None
    out = torch.empty(first.shape, dtype=ctx.out_dtype or first.dtype, device=first.device)
    for rows in row_blocks(first):
        block = torch.zeros_like(first[rows], dtype=acc)
        for t, c in zip(ts, coefs, strict=True):
            block.addcmul_(t[rows], c)
        if denom is not None:
            block.div_(denom)
        out[rows] = block.to(first.dtype)
    return out


register(
    Method(
        "linear",
        linear,
        base="ignored",
        shared={"normalize": True},
        per_input={"weight": None},
        per_input_on_base=True,
        doc="weighted average of all inputs",
    )
)

# ---------------------------------------------------------------------------------------------
# slerp


def slerp(ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], ctx: Context) -> torch.Tensor:
    """Spherical interpolation from the base (t=0) to the other model (t=1), whole-tensor angle.

    Float32 math in 1M-element chunks as mergekit 0.1.5 does: norms as the norm of chunk norms,
    the dot product of the normalised chunks, linear interpolation when |dot| > 0.9995.
    """
    assert base is not None
    v0, v1 = ts[base], ts[1 - base]
    dtype = _accum_dtype(v0)
    a = v0.reshape(1, -1)
    b = v1.reshape(1, -1)
    t = torch.tensor([shared["t"]], dtype=torch.float32, device=v0.device).reshape(-1, 1).to(dtype)
    if not a.shape[1]:
        return ctx.cast(((1 - t) * a + t * b).reshape(v0.shape).to(v0.dtype))
    chunks = [slice(s, s + BLOCK_ELEMENTS) for s in range(0, a.shape[1], BLOCK_ELEMENTS)]
    norm_a = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(a[:, c].to(dtype), dim=1, keepdim=True) for c in chunks]), dim=0
    )
    norm_b = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(b[:, c].to(dtype), dim=1, keepdim=True) for c in chunks]), dim=0
    )
    eps = 1e-8
    norm_a = torch.where(norm_a > eps, norm_a, 1)
    norm_b = torch.where(norm_b > eps, norm_b, 1)
    dot_parts = [((a[:, c].to(dtype) / norm_a) * (b[:, c].to(dtype) / norm_b)).sum(dim=1, keepdim=True) for c in chunks]
    dot = torch.stack(dot_parts).sum(dim=0).clamp(-1, 1)
    lin = dot.abs() > 0.9995
    theta = torch.acos(torch.where(lin, 0, dot))
    sin_theta = torch.sin(theta)
    coef_a = torch.where(lin, 1 - t, torch.sin((1 - t) * theta) / sin_theta)
    coef_b = torch.where(lin, t, torch.sin(t * theta) / sin_theta)
    ctx.stats["linear_fallback"] = bool(lin.item())
    result = torch.empty_like(a)
    out = torch.empty(a.shape, dtype=ctx.out_dtype or v0.dtype, device=a.device) if ctx.out_dtype not in (None, v0.dtype) else result
    for c in chunks:
        result[:, c] = coef_a * a[:, c].to(dtype) + coef_b * b[:, c].to(dtype)
        if out is not result:
            out[:, c] = result[:, c]
    return out.reshape(v0.shape)


register(
    Method(
        "slerp",
        slerp,
        base="required",
        shared={"t": None},
        per_input={},
        min_inputs=2,
        max_inputs=2,
        doc="spherical interpolation between the base and one other model",
    )
)

# ---------------------------------------------------------------------------------------------
# task arithmetic family (task_arithmetic, ties, dare_ties, dare_linear)


def _rescaled(t: torch.Tensor, mask: torch.Tensor, rescale: bool) -> torch.Tensor:
    """``t * mask`` computed in place (``t`` is scratch); with ``rescale`` its L1 norm is matched
    to the unmasked one (mergekit's rule)."""
    before = t.abs().sum() if rescale else None
    masked = t.mul_(as_numbers(mask, t.dtype))
    if before is None:
        return masked
    after = masked.abs().sum()
    if before < 1e-7 or after < 1e-7:
        return masked
    return masked.mul_(before / after)


def _top_share(delta: torch.Tensor, density: float, ctx: Context) -> torch.Tensor:
    """Flat bool mask of the ``density`` share of largest |delta| (at least one element).

    compat: exactly the elements mergekit's ``argsort(|delta|.float(), descending=True)[:k]``
    picks, ties at the cut value included, found by selection in O(n) (``selection.topk_mask``;
    the real argsort where that cannot vouch for the result).
    fast: the same count, ties at the cut kept in index order.
    """
    n = delta.numel()
    k = max(1, int(density * n))
    keys = magnitude_keys(delta) if delta.device.type == "cpu" else None
    if keys is not None and ctx.mode == "fast":
        cut = kth_largest(keys, k)
        keep = keys > cut
        need = k - int(torch.count_nonzero(keep))
        if need > 0:
            keep[torch.nonzero(keys == cut).reshape(-1)[:need]] = True
        return keep
    keep = topk_mask(keys, k) if keys is not None and sort_is_introsort() else None
    if keep is None:
        w = delta.abs().reshape(-1)
        keep = torch.zeros(n, dtype=torch.bool, device=delta.device)
        keep[torch.argsort(w.float() if w.device.type == "cpu" else w, descending=True)[:k]] = True
    return keep


def _dare_work_dtype(delta: torch.Tensor) -> torch.dtype:
    """mergekit draws DARE masks in the delta's dtype on accelerators and for bf16, else float32."""
    return delta.dtype if (delta.device.type != "cpu" or delta.dtype == torch.bfloat16) else torch.float32


def _bernoulli_mask(delta: torch.Tensor, density: float, gen: torch.Generator) -> torch.Tensor | np.ndarray:
    """mergekit's ``bernoulli(full_like(delta, density))`` as a flat bool mask (``rng.unpack`` it).

    CPU: drawn by ``rng.bernoulli_mask`` (the same generator outputs through a faster kernel)
    where its self-check passed, else ``torch.bernoulli`` block by block into a bool buffer (one
    draw per element in order, so the stream is consumed exactly as one full-size call would).
    """
    n = delta.numel()
    work = _dare_work_dtype(delta)
    if delta.device.type == "cpu" and gen.device.type == "cpu" and stream_matches():
        # the largest tensors' masks wait bit-packed while the other inputs' masks are drawn
        return bernoulli_mask(gen, float(torch.tensor(density, dtype=work)), n, packed=n > PACK_ABOVE)
    p = torch.full((min(n, BLOCK_ELEMENTS),), density, dtype=work, device=delta.device)
    keep = torch.empty(n, dtype=torch.bool, device=delta.device)
    for start in range(0, n, BLOCK_ELEMENTS):
        part = keep[start : start + BLOCK_ELEMENTS]
        torch.bernoulli(p[: part.numel()], generator=gen, out=part)
    return keep


def sum_rows(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(dim=0)`` for a few rows, bit for bit, in a third of the time for 16-bit floats on CPU.

    torch reduces 16-bit floats over dim 0 with a float32 accumulator that starts at +0 and adds
    the rows in order, rounding once at the end; its outer-dimension kernel is slow, so the same
    float32 adds are done here row by row. Only NaN payloads could come out differently (they
    depend on the kernel's vector width), so a block with any NaN is summed by torch itself.
    """
    if x.device.type != "cpu" or x.dtype not in (torch.bfloat16, torch.float16) or x.shape[0] > 16:
        return x.sum(dim=0)
    acc = torch.zeros(x.shape[1:], dtype=torch.float32)
    for row in x:
        acc.add_(row)
    if bool(acc.sum().isnan()):  # a NaN anywhere (or inf - inf in this check: then torch is merely asked too)
        return x.sum(dim=0)
    return acc.to(x.dtype)


def _sign_consensus(deltas: torch.Tensor, mask_dtype: torch.dtype) -> torch.Tensor:
    """TIES sign election: per element, the sign of the summed (weighted) deltas; >= 0 counts as +."""
    sign = deltas.sign().to(mask_dtype)
    majority = (sum_rows(deltas) >= 0).to(mask_dtype) * 2 - 1
    return sign == majority


def _agreement(deltas: torch.Tensor) -> torch.Tensor | None:
    """``_sign_consensus`` as 0/1 in the deltas' dtype, by arithmetic instead of bool tensors
    (bool compares and casts run ~10x slower than float ops here). ``deltas * it`` and
    ``weights * it`` sum to the bits the bool mask gives: a kept element is multiplied by 1, a
    dropped one becomes a zero whose sign a float32 sum from +0 never shows. None when the block
    holds a NaN (their payloads may differ): the caller then takes the bool path.
    """
    total = sum_rows(deltas)
    if bool(total.float().sum().isnan()):
        return None
    majority = total.sign().add_(0.5).sign_()  # +1 where the sum is >= 0 (sign 0 -> 0.5 -> +1), else -1
    return deltas.sign().mul_(majority).clamp_min_(0)  # 1 where a delta has the majority's sign


def _task_arithmetic_kernel(sparsify: str | None, consensus: bool) -> Kernel:
    """``sparsify``: None, "magnitude" (TIES trim) or "bernoulli" (DARE drop)."""

    def kernel(ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], ctx: Context) -> torch.Tensor:
        assert base is not None
        b = ts[base]
        others = [i for i in range(len(ts)) if i != base]
        if not others:
            return ctx.cast(b)
        deltas = b.new_empty((len(others), *b.shape))
        for row, i in enumerate(others):
            torch.sub(ts[i], b, out=deltas[row])
        sparse = [(row, per[i]["density"]) for row, i in enumerate(others) if sparsify and per[i]["density"] < 1]
        if sparsify == "bernoulli" and sparse:
            with ctx.generator() as gen:  # every draw of this tensor, in mergekit's order, at once
                masks = [_bernoulli_mask(deltas[row], d, gen) for row, d in sparse]
        for row, density in sparse:
            delta = deltas[row]
            if sparsify == "magnitude":
                if density <= 0 or delta.numel() == 0:
                    delta.zero_()
                    continue
                keep = _top_share(delta, density, ctx)
            else:
                keep = unpack(masks.pop(0), delta.numel())
                delta = delta.to(_dare_work_dtype(delta))
            result = _rescaled(delta, keep.reshape(delta.shape), shared["rescale"])
            if result.data_ptr() != deltas[row].data_ptr():
                deltas[row] = result
            del keep, delta, result
        weights = torch.tensor([per[i]["weight"] for i in others], dtype=deltas.dtype, device=deltas.device)
        # everything below is per element across the k deltas: column blocks give the same bits
        flat = deltas.reshape(len(others), -1)
        w2 = weights.reshape(-1, 1)
        base_flat = b.reshape(-1)
        out = torch.empty(base_flat.shape, dtype=ctx.out_dtype or b.dtype, device=b.device)
        for start in range(0, flat.shape[1], BLOCK_ELEMENTS):
            cols = slice(start, start + BLOCK_ELEMENTS)
            d = flat[:, cols] * w2
            if consensus:
                keep = _agreement(d)
                if keep is None:
                    keep = _sign_consensus(d, torch.int8 if shared["int8_mask"] else b.dtype)
                mixed = sum_rows(d * keep)
                divisor = sum_rows(w2 * keep)
                divisor.masked_fill_(divisor == 0, 1)
            else:
                mixed = sum_rows(d)
                divisor = w2.sum(dim=0)
                divisor[divisor.abs() < 1e-8] = 1
            if shared["normalize"]:
                mixed /= divisor
            if shared["lambda"] != 1:
                mixed *= shared["lambda"]
            out[cols] = (base_flat[cols] + mixed).to(b.dtype)
        return out.reshape(b.shape)

    return kernel


def _dare_draws(shared: dict, per: list[dict], numel: int) -> bool:
    return numel > 0 and any(p.get("density", 1.0) < 1 for p in per)


for _name, _sparsify, _consensus, _normalize, _rescale, _doc in (
    ("task_arithmetic", None, False, False, False, "base + sum of weighted task vectors"),
    ("ties", "magnitude", True, True, False, "trim to top-|delta| density, elect signs, disjoint mean"),
    ("dare_ties", "bernoulli", True, False, True, "random drop (DARE) with L1 rescale, then TIES sign election"),
    ("dare_linear", "bernoulli", False, False, True, "random drop (DARE) with L1 rescale, weighted sum"),
):
    register(
        Method(
            _name,
            _task_arithmetic_kernel(_sparsify, _consensus),
            base="required",
            shared={"int8_mask": False, "normalize": _normalize, "rescale": _rescale, "lambda": 1.0},
            per_input={"weight": None, "density": 1.0},
            draws=_dare_draws if _sparsify == "bernoulli" else (lambda s, p, n: False),
            doc=_doc,
        )
    )

# ---------------------------------------------------------------------------------------------
# arcee_fusion


def fusion_sample(numel: int, gen: torch.Generator, with_replacement: bool = True, device: torch.device | None = None,
                  ) -> list[torch.Tensor]:
    """The random positions of the quantile samples of a tensor over ``FUSION_SAMPLE`` elements.

    ``with_replacement`` (mergekit 0.1.5): one ``randint`` sample for all three quartiles;
    without (mergekit 0.1.4, as vendored by the TinyR1 release): two ``randperm(n)[:1M]``
    samples, the first for the median and the second for q1 and q3. ``randperm`` builds the full
    int64 permutation (8 bytes per element, transient) because that is what fixes the stream.
    Only this part needs the shared stream; the gathers and quantiles run after the turn is given up.
    """
    if with_replacement:
        return [torch.randint(numel, (FUSION_SAMPLE,), device=device, generator=gen)]
    picks = []
    for _ in range(2):
        perm = torch.randperm(numel, device=device, generator=gen)
        picks.append(perm[:FUSION_SAMPLE].clone())
        del perm
    return picks


def fusion_threshold(importance: torch.Tensor, factor: float, picks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Tukey upper fence ``median + factor * (q3 - q1)`` with mergekit's floor quantile rule.

    Above ``FUSION_SAMPLE`` elements the quartiles come from the samples at ``picks``
    (``fusion_sample``): one sample for all three, or the first for the median and the second
    for q1 and q3.
    """
    flat = importance.reshape(-1)
    idx = (torch.tensor(_QUANTILES) * (min(flat.numel(), FUSION_SAMPLE) - 1)).long()
    if flat.numel() <= FUSION_SAMPLE:
        q1, med, q3 = order_statistics(flat, idx)
        return med + factor * (q3 - q1)
    assert picks, "a tensor over FUSION_SAMPLE elements needs its sample positions"
    samples = [torch.take(flat, p) for p in picks]  # take: a 2.4x faster gather than [] on CPU
    if len(samples) == 1:
        q1, med, q3 = order_statistics(samples[0], idx)
    else:
        med = order_statistics(samples[0], idx[1:2])[0]
        q1, q3 = order_statistics(samples[1], idx[0::2])
    return med + factor * (q3 - q1)


def _fusion_importance(left: torch.Tensor, right: torch.Tensor, variant: str) -> torch.Tensor:
    """Per-element importance; ``code`` is mergekit/TinyR1's rule, ``paper`` the paper's Eq. 1."""
    if variant == "paper":  # one softmax over the whole tensor, KL(left || right), signed difference
        p = F.softmax(left.reshape(-1), dim=-1) + 1e-8
        q = F.softmax(right.reshape(-1), dim=-1) + 1e-8
        return torch.sum(p * torch.log(p / q)) * (left - right)
    imp = torch.empty_like(left)
    for rows in row_blocks(left):  # mergekit's ops, in place where that rounds the same
        a, b = left[rows], right[rows]
        p = F.softmax(b, dim=-1).add_(1e-8)
        q = F.softmax(a, dim=-1).add_(1e-8)
        r = torch.div(p, q).log_().mul_(p)
        kl = r.sum(dim=-1, keepdim=True)
        del r, q
        torch.mul(torch.sub(b, a, out=p).abs_(), kl, out=imp[rows])
    return imp


def arcee_fusion(ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], ctx: Context) -> torch.Tensor:
    """Take the right model's value where its importance reaches the Tukey fence, else the base's.

    ``iqr_factor`` is the fence factor (mergekit and TinyR1 hard-code 1.5); ``variant: paper``
    uses the paper's tensor-level KL(left||right), signed difference and strict ``>``;
    ``with_replacement`` picks the quantile sampling of tensors over 1M elements (true: mergekit
    0.1.5, the default; false: the TinyR1 release's vendored mergekit, see ``fusion_sample``).
    """
    assert base is not None
    left, right = ts[base], ts[1 - base]
    variant = shared["variant"]
    imp = _fusion_importance(left, right, variant)
    picks = None
    if imp.numel() > FUSION_SAMPLE:
        with ctx.generator() as gen:
            picks = fusion_sample(imp.numel(), gen, shared["with_replacement"], imp.device)
    thr = fusion_threshold(imp, shared["iqr_factor"], picks)
    out_dtype = ctx.out_dtype or torch.promote_types(left.dtype, torch.float32)
    out = torch.empty(left.shape, dtype=out_dtype, device=left.device)
    taken = 0
    # mergekit: a + (b - a) * mask.float() in float32, then cast. For bf16 in and out the same
    # bits come from bf16 ops on CPU: (b - a) is bf16 in both; times a bool mask is exact
    # (x * 1 = x, x * 0 = signed zero, NaN stays NaN, as in float32); and a CPU bf16 add computes
    # in float32 and rounds once to bf16, which is what the float32 sum cast to bf16 does.
    narrow = out_dtype == left.dtype == right.dtype == torch.bfloat16 and left.device.type == "cpu"
    for rows in row_blocks(left):
        sel = imp[rows] > thr if variant == "paper" else imp[rows] >= thr
        taken += int(torch.count_nonzero(sel))
        a = left[rows]
        if narrow:
            o = out[rows]
            torch.sub(right[rows], a, out=o).mul_(as_numbers(sel, o.dtype)).add_(a)
            continue
        delta = (right[rows] - a) * as_numbers(sel, torch.float32)  # float32, as mergekit's float mask promotes
        out[rows] = delta.add_(a)
    ctx.stats["fraction_from_right"] = taken / max(1, left.numel())
    ctx.stats["threshold"] = float(thr)
    return out


def _fusion_draws(shared: dict, per: list[dict], numel: int) -> bool:
    return numel > FUSION_SAMPLE


register(
    Method(
        "arcee_fusion",
        arcee_fusion,
        base="required",
        shared={"iqr_factor": 1.5, "variant": "code", "with_replacement": True},
        per_input={},
        min_inputs=2,
        max_inputs=2,
        draws=_fusion_draws,
        doc="Arcee Fusion: importance = |dW| * row KL; keep the right model above a Tukey fence",
    )
)

# ---------------------------------------------------------------------------------------------
# model_stock


def model_stock(ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], ctx: Context) -> torch.Tensor:
    """Model Stock: interpolate the fine-tunes' mean toward the base by their mean pairwise cosine."""
    assert base is not None
    w0 = ts[base]
    ws = [t for i, t in enumerate(ts) if i != base]
    shape = w0.shape
    if shared["filter_wise"]:
        if w0.dim() == 1:
            w0, ws = w0.unsqueeze(0), [w.unsqueeze(0) for w in ws]
    else:
        w0, ws = w0.reshape(-1), [w.reshape(-1) for w in ws]
    offsets = [w - w0 for w in ws]
    cos = []
    for i, oa in enumerate(offsets):
        for ob in offsets[i + 1 :]:
            norm = torch.norm(oa, dim=-1) * torch.norm(ob, dim=-1)
            cos.append(((oa * ob).sum(dim=-1) / norm.clamp(min=1e-6)).clamp(-1, 1))
    cos_theta = torch.stack(cos).mean(dim=0).unsqueeze(-1)
    n = len(ws)
    denom = 1 + (n - 1) * cos_theta
    singular = denom.abs() < 1e-6
    safe = torch.where(singular, torch.ones_like(denom), denom)
    t = torch.where(singular, torch.zeros_like(cos_theta), (n * cos_theta) / safe)
    average = sum(ws) / n
    return ctx.cast((t * average + (1 - t) * w0).reshape(shape))


register(
    Method(
        "model_stock",
        model_stock,
        base="required",
        shared={"filter_wise": False},
        per_input={},
        min_inputs=3,
        doc="Model Stock: geometric interpolation toward the base (needs >= 2 fine-tunes)",
    )
)

FAST_DEVIATION: dict[str, str] = {
    "linear": "none: same kernel as compat",
    "task_arithmetic": "none: same kernel as compat",
    "model_stock": "none: same kernel as compat",
    "ties": (
        "only elements whose |delta| equals the density cut value may differ (compat keeps "
        "argsort's arbitrary subset of those ties, fast the lowest indices); max |diff| per element "
        "<= weight * cut value / normaliser"
    ),
    "slerp": "none: same kernel as compat",
    "dare_ties": "independent random stream per tensor (seed, name): same distribution, different mask",
    "dare_linear": "independent random stream per tensor (seed, name): same distribution, different mask",
    "arcee_fusion": (
        "independent random stream per tensor (seed, name) for the quantile sample of tensors over "
        "1M elements: each output element is still exactly the base's or the right model's value"
    ),
}


def seed_for(seed: int, name: str) -> int:
    """Per-tensor seed for fast mode: stable across runs and independent of scheduling."""
    h = 1469598103934665603
    for byte in f"{seed}:{name}".encode():
        h = ((h ^ byte) * 1099511628211) % (1 << 64)
    return h % (1 << 63)

