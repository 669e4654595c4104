"""What a merge leaves beside the weights: ``stats.json`` (``MergeStats``) and the model card.

The card carries mergekit's metadata (``base_model`` listing every input, ``base_model_relation:
merge``, ``library_name``, ``tags``) so the Hub shows the merge as it shows mergekit's; input paths
in the stats are relative to the merged folder, so the run folder can be moved or copied.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from branchmerge.cards import model_card
from branchmerge.contracts import MergeInput, MergeStats, relative_to
from branchmerge.merge.methods import FAST_DEVIATION

if TYPE_CHECKING:
    from branchmerge.merge.config import MergeConfig
    from branchmerge.merge.engine import TensorJob
    from branchmerge.merge.memory import MemorySampler
    from branchmerge.merge.options import Options


def merge_stats(cfg: MergeConfig, opts: Options, jobs: list[TensorJob], per_tensor: dict[str, dict[str, Any]],
                shards: list[str], hashes: dict[str, str], elapsed: float, sampler: MemorySampler,
                out_dir: Path, hashed: int | None = None) -> MergeStats:
    peak = sampler.stop()
    if opts.device.startswith("cuda"):
        peak["cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated(opts.device))
    inputs = []
    for i, m in enumerate(cfg.models):
        files = {Path(p).name: h for p, h in hashes.items() if Path(p).parent == m.path}
        digest = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
        inputs.append(MergeInput(ref=m.ref, path=relative_to(m.path, out_dir), role="base" if i == cfg.base else "model",
                                 sha256=digest, files=files))
    sizes = {j.name: math.prod(j.shape) for j in jobs}
    stats = MergeStats(
        method=cfg.method.name, mode=opts.mode, seed=opts.seed, device=opts.device, threads=opts.workers,
        config=cfg.raw, dtype=cfg.dtype, out_dtype=cfg.out_dtype, inputs=inputs, tensors=len(jobs),
        parameters=sum(sizes.values()), shards=shards, time_s=round(elapsed, 3), peak_memory=peak,
        input_files_hashed=hashed, fast_mode_deviation=FAST_DEVIATION.get(cfg.method.name) if opts.mode == "fast" else None,
    )
    if cfg.method.name == "arcee_fusion":
        fractions = {k: v["fraction_from_right"] for k, v in sorted(per_tensor.items())}
        total = sum(sizes[k] for k in fractions)
        stats.fraction_from_right = fractions
        stats.fraction_from_right_overall = sum(f * sizes[k] for k, f in fractions.items()) / total if total else 0.0
    if cfg.method.name == "slerp":
        stats.slerp_linear_fallback = sorted(k for k, v in per_tensor.items() if v.get("linear_fallback"))
    return stats


def merge_card(cfg: MergeConfig, stats: MergeStats) -> str:
    import yaml

    meta = {
        "base_model": [i.ref for i in stats.inputs],
        "base_model_relation": "merge",
        "library_name": "transformers",
        "tags": ["merge", "mergekit", "branchmerge", stats.method],
    }
    anon = stats.peak_memory.get("rss_anon_peak_bytes", 0) / 2**20
    lines = [
        f"# Merged model ({stats.method})",
        "",
        f"Made with `branchmerge merge` in **{stats.mode}** mode (seed {stats.seed}, device {stats.device}).",
        f"{stats.tensors} tensors, {stats.parameters:,} parameters, {len(stats.shards)} shard(s), "
        f"{stats.time_s:.1f} s, peak anonymous memory {anon:.0f} MiB.",
        "",
        "## Inputs",
        "",
        "| role | model | sha256 (of its weight files) |",
        "|---|---|---|",
        *[f"| {i.role} | `{i.ref}` | `{i.sha256[:16]}…` |" for i in stats.inputs],
    ]
    if stats.fraction_from_right_overall is not None:
        lines += ["", f"Share of elements taken from the right (non-base) model: {stats.fraction_from_right_overall:.2%}."]
    if stats.fast_mode_deviation:
        lines += ["", f"Fast mode deviation from mergekit 0.1.5: {stats.fast_mode_deviation}."]
    lines += [
        "",
        "Output dtype follows the config (`out_dtype`, else `dtype`, else the inputs'); mergekit would "
        "write float32 for arcee_fusion without `out_dtype`.",
        "",
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(cfg.raw, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return model_card(meta, "\n".join(lines))
