"""Merge benchmark: branchmerge vs mergekit-yaml (0.1.5) on three synthetic ~0.5B bf16 Llamas.

For arcee_fusion, ties (density 0.5) and linear, runs mergekit-yaml (from the parity venv that
tests/merge_parity.py creates) and `branchmerge merge` as separate processes, one after the
other, sampling each one's /proc/<pid>/status for peak anonymous and file-backed memory. Prints
wall time, peak memory, the ratios, and whether every output tensor is bit-identical.

    python bench/merge.py                      # ~0.47B parameters, compat mode
    python bench/merge.py --size small         # quick check (~60M)
    python bench/merge.py --mode fast --methods ties
    python bench/merge.py --device cuda --size 1.5b --no-mergekit   # GPU check

Targets (compat): >= 3x faster and <= 1/3 of mergekit's peak anonymous memory, outputs identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from branchmerge.merge.memory import MemorySampler  # noqa: E402
from branchmerge.merge.safetensors_io import SafetensorsModel  # noqa: E402
from tests.merge_parity import llama_config, llama_shapes, mergekit_python, write_model  # noqa: E402

SIZES = {  # hidden, intermediate, layers, vocab
    "small": (512, 1536, 8, 32000),
    "0.5b": (1024, 4096, 24, 32000),
    "1.5b": (2048, 5632, 24, 32000),
}


def build_models(root: Path, size: str) -> list[Path]:
    """base + two fine-tunes (base + N(0, 0.004), 30% of rows untouched), cached between runs."""
    hidden, inter, layers, vocab = SIZES[size]
    out = [root / n for n in ("base", "ft0", "ft1")]
    if all((p / "model.safetensors.index.json").exists() for p in out):
        return out
    shutil.rmtree(root, ignore_errors=True)
    cfg = llama_config(hidden, inter, layers, max(1, hidden // 64), vocab)
    shapes = llama_shapes(hidden, inter, layers, vocab)
    g = torch.Generator().manual_seed(0)
    print(f"building three {size} models under {root} ...", flush=True)
    base = {n: ((torch.randn(s, generator=g) * 0.02) if len(s) == 2 else 1 + 0.1 * torch.randn(s, generator=g)).bfloat16() for n, s in shapes.items()}
    write_model(out[0], base, cfg, shard_bytes=2_000_000_000)
    for path in out[1:]:
        ft = {}
        for n, t in base.items():
            noise = torch.randn(t.shape, generator=g) * 0.004
            if t.dim() == 2:
                noise[torch.rand(t.shape[0], generator=g) < 0.3] = 0
            ft[n] = (t.float() + noise).bfloat16()
            del noise
        write_model(path, ft, cfg, shard_bytes=2_000_000_000)
        del ft
    return out


def configs(models: list[Path]) -> dict[str, dict]:
    base, ft0, ft1 = (str(p) for p in models)
    return {
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": base, "models": [{"model": base}, {"model": ft0}], "dtype": "bfloat16", "out_dtype": "bfloat16"},
        "ties": {
            "merge_method": "ties",
            "base_model": base,
            "models": [{"model": base}, {"model": ft0, "parameters": {"weight": 0.6}}, {"model": ft1, "parameters": {"weight": 0.4}}],
            "parameters": {"density": 0.5},
            "dtype": "bfloat16",
        },
        "linear": {
            "merge_method": "linear",
            "models": [{"model": base, "parameters": {"weight": 0.4}}, {"model": ft0, "parameters": {"weight": 0.3}}, {"model": ft1, "parameters": {"weight": 0.3}}],
            "dtype": "bfloat16",
        },
    }


def run(cmd: list[str]) -> dict:
    """Run ``cmd``, sampling its memory; return wall time and peaks (bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = MemorySampler(proc.pid, interval=0.01).start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{stderr[-3000:]}")
    return {"wall_s": wall, "anon": peak.get("rss_anon_peak_bytes", 0), "file": peak.get("rss_file_peak_bytes", 0), "hwm": peak.get("vm_hwm_peak_bytes", 0)}


def best(old: dict | None, new: dict) -> dict:
    """Fastest wall time; memory peaks are the largest seen in any run."""
    if old is None:
        return new
    out = {k: max(old[k], new[k]) for k in ("anon", "file", "hwm")}
    out["wall_s"] = min(old["wall_s"], new["wall_s"])
    return out


def identical(a: Path, b: Path) -> tuple[bool, str]:
    ma, mb = SafetensorsModel(a), SafetensorsModel(b)
    if sorted(ma.tensors) != sorted(mb.tensors):
        return False, "tensor names differ"
    for name in sorted(ma.tensors):
        x, y = ma.get(name), mb.get(name)
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x.view(torch.uint8), y.view(torch.uint8)):
            return False, f"first difference: {name}"
    return True, f"{len(ma.tensors)} tensors bit-identical"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    ap.add_argument("--methods", default="arcee_fusion,ties,linear")
    ap.add_argument("--mode", choices=("compat", "fast"), default="compat")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "branchmerge-bench")
    ap.add_argument("--no-mergekit", action="store_true", help="only time branchmerge (e.g. on a GPU box)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and method; the fastest is kept (shared machines are noisy)")
    args = ap.parse_args()

    models = build_models(args.work_dir / args.size, args.size)
    n_params = sum(i.numel for i in SafetensorsModel(models[0]).tensors.values())
    mk_bin = None
    if not args.no_mergekit:
        py, why = mergekit_python()
        if py is None:
            raise SystemExit(f"mergekit unavailable: {why} (use --no-mergekit to time branchmerge alone)")
        mk_bin = py.parent / "mergekit-yaml"
    results = []
    print(f"{n_params / 1e9:.2f}B parameters per model, bf16; mode {args.mode}; device {args.device}; torch threads {torch.get_num_threads()}")
    for method in args.methods.split(","):
        cfg = configs(models)[method]
        work = args.work_dir / "runs" / method
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cfg_path = work / "config.yaml"
        cfg_path.write_text(json.dumps(cfg))  # JSON is valid YAML
        row: dict = {"method": method}
        mk_cmd = [str(mk_bin), str(cfg_path), str(work / "mk"), "--random-seed", "0"] + (["--cuda"] if args.device.startswith("cuda") else [])
        ours_cmd = [sys.executable, "-m", "branchmerge", "-q", "merge", str(cfg_path), str(work / "ours"), "--seed", "0", "--mode", args.mode, "--device", args.device, "--workers", str(args.workers)]
        row["load_before"] = os.getloadavg()[0]
        for _ in range(args.repeat):  # alternate the two tools so both see similar machine load
            if mk_bin is not None:
                row["mergekit"] = best(row.get("mergekit"), run(mk_cmd))
            row["ours"] = best(row.get("ours"), run(ours_cmd))
        stats = json.loads((work / "ours" / "stats.json").read_text())
        if "cuda_max_allocated_bytes" in stats["peak_memory"]:
            row["ours"]["cuda_max_allocated"] = stats["peak_memory"]["cuda_max_allocated_bytes"]
        if mk_bin is not None:
            row["identical"], row["detail"] = identical(work / "ours", work / "mk")
            mk, us = row["mergekit"], row["ours"]
            row["speedup"] = mk["wall_s"] / us["wall_s"]
            row["anon_ratio"] = us["anon"] / max(1, mk["anon"])
        results.append(row)
        _print_row(row)
        shutil.rmtree(work / "mk", ignore_errors=True)
        shutil.rmtree(work / "ours", ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "params": n_params, "mode": args.mode, "device": args.device, "results": results}, indent=2))


def _print_row(row: dict) -> None:
    gib = 2**30

    def fmt(r: dict) -> str:
        s = f"{r['wall_s']:7.1f} s  anon {r['anon'] / gib:5.2f} GiB  file {r['file'] / gib:5.2f} GiB  hwm {r['hwm'] / gib:5.2f} GiB"
        if "cuda_max_allocated" in r:
            s += f"  cuda {r['cuda_max_allocated'] / gib:5.2f} GiB"
        return s

    print(f"\n== {row['method']}  (1-min load average before: {row['load_before']:.1f} on {os.cpu_count()} cores)")
    if "mergekit" in row:
        print(f"  mergekit-yaml : {fmt(row['mergekit'])}")
    print(f"  branchmerge   : {fmt(row['ours'])}")
    if "speedup" in row:
        ok_speed = "OK" if row["speedup"] >= 3 else "below target"
        ok_mem = "OK" if row["anon_ratio"] <= 1 / 3 else "above target"
        print(f"  speedup {row['speedup']:.2f}x ({ok_speed}, target >= 3x); anon memory ratio {row['anon_ratio']:.3f} ({ok_mem}, target <= 0.333)")
        print(f"  outputs identical: {row['identical']} ({row['detail']})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
