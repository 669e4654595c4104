"""Merge benchmark: branchmerge vs mergekit-yaml (0.1.5) on three synthetic ~0.5B bf16 Llamas.

For every merge method (arcee_fusion, ties, dare_ties, dare_linear, task_arithmetic, linear,
slerp, model_stock) runs mergekit-yaml and `branchmerge merge` as separate processes, one after the other, sampling each one's
/proc/<pid>/status for peak anonymous and file-backed memory. Our run is repeated in `fast` mode
for the methods whose fast kernels differ. Prints wall time, peak memory, the ratios, whether
every output tensor is bit-identical, and a roofline line: bytes read + written per second of
the merge against this machine's measured page-cache read, buffered write and memory-copy
bandwidth. breadcrumbs is not benchmarked: branchmerge has no breadcrumbs method.

    python bench/merge.py                      # ~0.47B parameters, every method, compat (+ fast)
    python bench/merge.py --size small         # quick check (~60M)
    python bench/merge.py --modes fast --methods ties
    python bench/merge.py --device cuda --size 1.5b --no-mergekit   # GPU check

mergekit 0.1.5 never enters the project's environment: name a Python that has it with
--mergekit-python or $BRANCHMERGE_MERGEKIT_PYTHON, e.g. one made with
    python -m venv /work/mergekit-venv
    /work/mergekit-venv/bin/pip install torch==2.13.0 && /work/mergekit-venv/bin/pip install mergekit==0.1.5
(else the parity venv of tests/merge_parity.py is used if it exists). Run it alone on the machine
(`flock /tmp/branchmerge-heavy.lock python bench/merge.py`): the load average is printed per row.

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
from branchmerge.merge.methods import FAST_DEVIATION  # noqa: E402
from branchmerge.merge.safetensors_io import SafetensorsModel  # noqa: E402
from tests.merge_parity import (  # noqa: E402
    MERGEKIT_PYTHON_ENV,
    check_mergekit_python,
    llama_config,
    llama_shapes,
    mergekit_python,
    write_model,
)

SIZES = {  # hidden, intermediate, layers, vocab
    "small": (512, 1536, 8, 32000),
    "0.5b": (1024, 4096, 24, 32000),
    "1.5b": (2048, 5632, 24, 32000),
}
METHODS = ("arcee_fusion", "ties", "dare_ties", "dare_linear", "task_arithmetic", "linear", "slerp", "model_stock")
GIB = 2**30


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
    weighted = [{"model": base}, {"model": ft0, "parameters": {"weight": 0.6}}, {"model": ft1, "parameters": {"weight": 0.4}}]
    return {
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": base, "models": [{"model": base}, {"model": ft0}], "dtype": "bfloat16", "out_dtype": "bfloat16"},
        "ties": {"merge_method": "ties", "base_model": base, "models": weighted, "parameters": {"density": 0.5}, "dtype": "bfloat16"},
        "dare_ties": {"merge_method": "dare_ties", "base_model": base, "models": weighted, "parameters": {"density": 0.5}, "dtype": "bfloat16"},
        "dare_linear": {"merge_method": "dare_linear", "base_model": base, "models": weighted, "parameters": {"density": 0.7}, "dtype": "bfloat16"},
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": base, "models": weighted, "dtype": "bfloat16"},
        "linear": {
            "merge_method": "linear",
            "models": [{"model": base, "parameters": {"weight": 0.4}}, {"model": ft0, "parameters": {"weight": 0.3}}, {"model": ft1, "parameters": {"weight": 0.3}}],
            "dtype": "bfloat16",
        },
        "slerp": {"merge_method": "slerp", "base_model": base, "models": [{"model": base}, {"model": ft0}], "parameters": {"t": [0.2, 0.8]}, "dtype": "bfloat16"},
        "model_stock": {"merge_method": "model_stock", "base_model": base, "models": [{"model": base}, {"model": ft0}, {"model": ft1}], "dtype": "bfloat16"},
    }


_MERGEKIT_DRIVER = """
import json, sys, time
import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions
config, out, seed, cuda, report = sys.argv[1:6]
cfg = MergeConfiguration.model_validate(yaml.safe_load(open(config)))
t0 = time.perf_counter()
run_merge(cfg, out, MergeOptions(random_seed=int(seed), cuda=cuda == "1", quiet=True))
open(report, "w").write(json.dumps({"merge_s": time.perf_counter() - t0}))
"""


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
    for k in ("wall_s", "merge_s"):
        if k in new:
            out[k] = min(old.get(k, new[k]), new[k])
    if "hashed" in new:  # whether the fastest run hashed its inputs or found them cached
        out["hashed"] = new["hashed"] if new["wall_s"] <= old["wall_s"] else old.get("hashed")
    return out


def compare(a: Path, b: Path) -> tuple[bool, str]:
    """Whether every tensor is bit-identical; else how many elements differ."""
    ma, mb = SafetensorsModel(a), SafetensorsModel(b)
    if sorted(ma.tensors) != sorted(mb.tensors):
        return False, "tensor names differ"
    differ = total = 0
    first = None
    for name in sorted(ma.tensors):
        x, y = ma.get(name), mb.get(name)
        if x.dtype != y.dtype or x.shape != y.shape:
            return False, f"{name}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"
        n = int((x.view(torch.uint8).reshape(-1, x.element_size()) != y.view(torch.uint8).reshape(-1, y.element_size())).any(1).sum())
        differ += n
        total += x.numel()
        if n and first is None:
            first = name
    if not differ:
        return True, f"{len(ma.tensors)} tensors bit-identical"
    return False, f"{differ / total:.3%} of elements differ (first: {first})"


def machine_bandwidth(work: Path, files: list[Path]) -> dict[str, float]:
    """Best of three, in bytes/s: page-cache read (read(2)), buffered write (pwrite, no fsync), memory copy."""
    view = memoryview(bytearray(64 << 20))
    src = torch.ones(1 << 27)  # 512 MiB float32
    dst = torch.empty_like(src)
    probe = work / "bandwidth.probe"
    out = {"read": 0.0, "write": 0.0, "copy": 0.0}
    for _ in range(3):
        t0, n = time.perf_counter(), 0
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while got := fh.readinto(view):
                    n += got
        out["read"] = max(out["read"], n / (time.perf_counter() - t0))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        t0, n = time.perf_counter(), 0
        try:
            while n < 1 << 29:
                n += os.pwrite(fd, view, n)
            out["write"] = max(out["write"], n / (time.perf_counter() - t0))
        finally:
            os.close(fd)
            probe.unlink()
        t0 = time.perf_counter()
        dst.copy_(src)
        out["copy"] = max(out["copy"], 2 * src.numel() * 4 / (time.perf_counter() - t0))  # bytes read + written
    return out


def io_bytes(cfg_models: list[str], out_dir: Path) -> tuple[int, int]:
    """(bytes of input tensors read, bytes of output tensors written) for one merge."""
    read = sum(sum(i.nbytes for i in SafetensorsModel(Path(m)).tensors.values()) for m in cfg_models)
    written = sum(i.nbytes for i in SafetensorsModel(out_dir).tensors.values())
    return read, written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--modes", default="compat,fast", help="our modes; fast runs only where its kernel differs from compat")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "branchmerge-bench")
    ap.add_argument("--no-mergekit", action="store_true", help="only time branchmerge (e.g. on a GPU box)")
    ap.add_argument("--mergekit-python", type=Path, default=os.environ.get(MERGEKIT_PYTHON_ENV) or None,
                    help=f"a Python with mergekit 0.1.5 installed (default: ${MERGEKIT_PYTHON_ENV}, else the parity venv)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and method; the fastest is kept (shared machines are noisy)")
    args = ap.parse_args()

    models = build_models(args.work_dir / args.size, args.size)
    n_params = sum(i.numel for i in SafetensorsModel(models[0]).tensors.values())
    mk_bin = None
    if not args.no_mergekit:
        if args.mergekit_python is not None:
            py, why = args.mergekit_python, check_mergekit_python(args.mergekit_python)
        else:
            py, why = mergekit_python(install=False)
        if why or py is None:
            raise SystemExit(
                f"mergekit 0.1.5 not found: {why}.\nInstall it in its own venv and name its python, e.g.\n"
                "  python -m venv /work/mergekit-venv && /work/mergekit-venv/bin/pip install torch==2.13.0 "
                "&& /work/mergekit-venv/bin/pip install mergekit==0.1.5\n"
                f"  python bench/merge.py --mergekit-python /work/mergekit-venv/bin/python   (or ${MERGEKIT_PYTHON_ENV}=...)\n"
                "or pass --no-mergekit to time branchmerge alone."
            )
        mk_bin = py
    modes = [m for m in args.modes.split(",") if m]
    # our sha256 cache starts empty in every bench run: the first method pays for hashing the
    # inputs, later ones reuse the digests as a user merging the same inputs again would
    cache = args.work_dir / "sha256-cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["BRANCHMERGE_CACHE"] = str(cache)
    bw = machine_bandwidth(args.work_dir, [f for m in models for f in SafetensorsModel(m).files])
    print(f"{n_params / 1e9:.2f}B parameters per model, bf16; device {args.device}; torch threads {torch.get_num_threads()}; {os.cpu_count()} cores")
    print(f"machine: page-cache read {bw['read'] / 1e9:.2f} GB/s, buffered write {bw['write'] / 1e9:.2f} GB/s, memory copy {bw['copy'] / 1e9:.2f} GB/s (read+write)")
    results = []
    for method in args.methods.split(","):
        cfg = configs(models)[method]
        work = args.work_dir / "runs" / method
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cfg_path = work / "config.yaml"
        cfg_path.write_text(json.dumps(cfg))  # JSON is valid YAML
        # mergekit's own run_merge (what mergekit-yaml calls) with mergekit-yaml's default options,
        # timed inside the process too, so the merge phase compares without either tool's imports
        mk_report = work / "mk_time.json"
        mk_cmd = [str(mk_bin), "-c", _MERGEKIT_DRIVER, str(cfg_path), str(work / "mk"), "0", "1" if args.device.startswith("cuda") else "0", str(mk_report)]
        differs = not FAST_DEVIATION.get(method, "none").startswith("none")
        mk_result = None
        for mode in [m for m in modes if m != "fast" or differs]:
            row: dict = {"method": method, "mode": mode, "load_before": os.getloadavg()}
            ours_cmd = [sys.executable, "-m", "branchmerge", "-q", "merge", str(cfg_path), str(work / "ours"), "--seed", "0", "--mode", mode, "--device", args.device, "--workers", str(args.workers)]
            for _ in range(args.repeat):  # alternate the two tools so both see similar machine load
                if mk_bin is not None and not results_for(results, method):  # once per method, reused by fast
                    mk_run = run(mk_cmd)
                    mk_run["merge_s"] = json.loads(mk_report.read_text())["merge_s"]
                    mk_result = best(mk_result, mk_run)
                ours = run(ours_cmd)
                ours_stats = json.loads((work / "ours" / "stats.json").read_text())
                ours["merge_s"] = ours_stats["time_s"]
                ours["hashed"] = ours_stats.get("input_files_hashed")
                row["ours"] = best(row.get("ours"), ours)
            stats = json.loads((work / "ours" / "stats.json").read_text())
            if "cuda_max_allocated_bytes" in stats["peak_memory"]:
                row["ours"]["cuda_max_allocated"] = stats["peak_memory"]["cuda_max_allocated_bytes"]
            read, written = io_bytes([m["model"] for m in cfg["models"]], work / "ours")
            row["bytes_read"], row["bytes_written"] = read, written
            if mk_result is not None:
                row["mergekit"] = mk_result
                row["identical"], row["detail"] = compare(work / "ours", work / "mk")
                row["speedup"] = mk_result["wall_s"] / row["ours"]["wall_s"]
                row["speedup_merge"] = mk_result["merge_s"] / row["ours"]["merge_s"]
                row["anon_ratio"] = row["ours"]["anon"] / max(1, mk_result["anon"])
            results.append(row)
            _print_row(row, bw)
            shutil.rmtree(work / "ours", ignore_errors=True)
        shutil.rmtree(work / "mk", ignore_errors=True)
    _print_summary(results)
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "params": n_params, "device": args.device, "bandwidth": bw, "results": results}, indent=2))


def results_for(results: list[dict], method: str) -> list[dict]:
    return [r for r in results if r["method"] == method]


def _fmt(r: dict) -> str:
    s = f"{r['wall_s']:7.1f} s  anon {r['anon'] / GIB:5.2f} GiB  file {r['file'] / GIB:5.2f} GiB  hwm {r['hwm'] / GIB:5.2f} GiB"
    if "cuda_max_allocated" in r:
        s += f"  cuda {r['cuda_max_allocated'] / GIB:5.2f} GiB"
    return s


def _print_row(row: dict, bw: dict[str, float]) -> None:
    load = row["load_before"]
    print(f"\n== {row['method']} ({row['mode']})  (load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores)")
    if "mergekit" in row:
        print(f"  mergekit      : {_fmt(row['mergekit'])}  (merge itself {row['mergekit']['merge_s']:.1f} s)")
    hashed = row["ours"].get("hashed")
    hashes = "" if hashed is None else f"; input sha256: {'computed' if hashed else 'from the cache'}"
    print(f"  branchmerge   : {_fmt(row['ours'])}  (merge itself {row['ours']['merge_s']:.1f} s{hashes})")
    if "speedup" in row:
        ok_speed = "OK" if row["speedup"] >= 3 else "below target"
        ok_mem = "OK" if row["anon_ratio"] <= 1 / 3 else "above target"
        ok_merge = "OK" if row["speedup_merge"] >= 3 else "below target"
        print(f"  speedup {row['speedup']:.2f}x whole process ({ok_speed}, target >= 3x), {row['speedup_merge']:.2f}x merge phase "
              f"without imports ({ok_merge}); anon memory ratio {row['anon_ratio']:.3f} ({ok_mem}, target <= 0.333)")
        print(f"  outputs identical: {row['identical']} ({row['detail']})")
    moved = row["bytes_read"] + row["bytes_written"]
    floor_io = row["bytes_read"] / bw["read"] + row["bytes_written"] / bw["write"]
    floor_mem = moved / bw["copy"]
    merge_s = row["ours"]["merge_s"]
    print(
        f"  roofline: {row['bytes_read'] / 1e9:.2f} GB read + {row['bytes_written'] / 1e9:.2f} GB written in {merge_s:.2f} s = "
        f"{moved / merge_s / 1e9:.2f} GB/s; I/O floor {floor_io:.2f} s (at {bw['read'] / 1e9:.1f} GB/s read, {bw['write'] / 1e9:.1f} GB/s write), "
        f"memory floor {floor_mem:.2f} s (at {bw['copy'] / 1e9:.1f} GB/s) -> {floor_io / merge_s:.0%} of the I/O roofline"
    )
    row["roofline"] = floor_io / merge_s
    sys.stdout.flush()


def _print_summary(results: list[dict]) -> None:
    print("\n| method | mode | mergekit s (merge) | ours s (merge) | speed, whole process | speed, merge phase | peak anon vs mergekit | roofline | bit-identical | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        mk = r.get("mergekit")
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        anon = f"{r['anon_ratio']:.2f}" if "anon_ratio" in r else "-"
        same = ("yes" if r["identical"] else "no: " + r["detail"]) if "identical" in r else "-"
        merge = f"{r['speedup_merge']:.2f}x" if "speedup_merge" in r else "-"
        roof = f"{r['roofline']:.0%}"
        ours = f"{r['ours']['wall_s']:.1f} ({r['ours']['merge_s']:.1f})"
        print(f"| {r['method']} | {r['mode']} | {mk['wall_s']:.1f} ({mk['merge_s']:.1f}) | {ours} | {speed} | {merge} | {anon} | {roof} | {same} | {r['load_before'][0]:.2f} |" if mk else
              f"| {r['method']} | {r['mode']} | - | {ours} | - | - | - | {roof} | - | {r['load_before'][0]:.2f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
