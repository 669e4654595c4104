"""Bench: verification throughput of the local executor against Ray on the same CPUs, and what N nodes would do.

Workloads (fresh rows for every run, so no grader cache carries over from one run to the next):

- ``math``: distinct (gold, completion) pairs that need the full math-verify check (no fast path):
  ``\\sqrt{a}+\\frac{1}{b}`` against the terms in the other order, a share of them wrong;
- ``code``: programs run against stdin/stdout tests in the real sandbox (right, wrong, crashing).

Anchor: ``--executor local`` (``grade_rows`` with ``--workers`` processes: the deadline-enforcing
pool for math, the sandbox's own workers for code). Ours: ``--executor ray`` on a local cluster
started with the same number of CPUs, one CPU per task. Each executor runs a cold batch (worker
start-up included) and ``--repeats`` warm ones; the warm median is compared, and the verdicts of
both executors must agree row for row.

The N-node model is built from measured numbers only: ``c`` = CPU-seconds per row on a Ray worker
(warm wall time x CPUs / rows) and ``o`` = driver seconds per row when the rows need no work at all
(rows settled before any check: orchestration, transfer and storing only). With ``C`` CPUs per
node, ``rows/s(N) = 1 / max(c / (N C), o)``: linear until the driver becomes the limit.

    flock /tmp/branchmerge-heavy.lock python bench/scale.py [--cpus 2] [--rows 400] [--code-rows 120]
        [--repeats 2] [--nodes 1,2,4,8,16] [--cpus-per-node 32]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from typing import Any

STDIO = {"inputs": ["3\n", "5\n", "11\n"], "outputs": ["6\n", "10\n", "22\n"]}
PROGRAMS = ["print(int(input()) * 2)", "print(int(input()) * 3)", "import sys\nsys.exit(1/0)",
            "n = int(input())\nprint(sum([n, n]))"]


def math_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 10**6), rng.randint(2, 10**6)
        gold = f"\\frac{{1}}{{{b}}}+\\sqrt{{{a}}}"
        pred = f"\\sqrt{{{a}}}+\\frac{{1}}{{{b if i % 5 else b + 1}}}"
        rows.append({"id": f"m{seed}-{i}", "completion": f"<think>\nwork {i}\n</think>\n\n$\\boxed{{{pred}}}$",
                     "reference": gold})
    return rows


def code_rows(n: int, seed: int) -> list[dict[str, Any]]:
    return [{"id": f"c{seed}-{i}", "reference": STDIO,
             "completion": f"<think>\nplan {seed} {i}\n</think>\n\n```python\n# {seed}-{i}\n{PROGRAMS[i % len(PROGRAMS)]}\n```\n"}
            for i in range(n)]


def settled_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows the grader settles without any check (no closing </think>): pure orchestration cost."""
    return [{"id": f"s{seed}-{i}", "completion": f"<think>\nstill thinking {i}", "reference": "1"} for i in range(n)]


def timed(executor: Any, rows: list[dict[str, Any]], domain: str, workers: int) -> tuple[float, list[dict]]:
    from branchmerge.executors.work import grade

    start = time.perf_counter()
    graded = grade(executor, rows, domain, workers=workers, limits={"timeout_s": 3} if domain == "code" else None)
    return time.perf_counter() - start, graded


def run(name: str, executor: Any, make: Any, n: int, domain: str, workers: int, repeats: int) -> dict[str, Any]:
    cold, first = timed(executor, make(n, 0), domain, workers)
    warm, verdicts = [], [r["verdict"] for r in first]
    for k in range(repeats):
        seconds, graded = timed(executor, make(n, k + 1), domain, workers)
        warm.append(seconds)
        verdicts += [r["verdict"] for r in graded]
    median = statistics.median(warm)
    print(f"  {name:<6} {domain:<5} cold {n / cold:8.1f} rows/s   warm {n / median:8.1f} rows/s "
          f"(median of {repeats}: {median:.2f}s for {n} rows)", flush=True)
    return {"cold_s": cold, "warm_s": warm, "warm_rows_per_s": n / median, "verdicts": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rows", type=int, default=400, help="math rows per batch")
    parser.add_argument("--code-rows", type=int, default=120, help="code rows per batch")
    parser.add_argument("--settled-rows", type=int, default=4000, help="rows for the driver-overhead run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nodes", default="1,2,4,8,16")
    parser.add_argument("--cpus-per-node", type=int, default=32)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    import ray

    from branchmerge.executors import LocalExecutor, RayExecutor
    from branchmerge.verify import close_pools

    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} on "
          f"{os.cpu_count()} CPUs; ray {ray.__version__}", flush=True)
    local = LocalExecutor(args.cpus)
    results: dict[str, Any] = {"cpus": args.cpus, "load_before": load_before}
    for domain, make, n in (("math", math_rows, args.rows), ("code", code_rows, args.code_rows)):
        results[f"local_{domain}"] = run("local", local, make, n, domain, args.cpus, args.repeats)
    close_pools()
    remote = RayExecutor(num_cpus=args.cpus)
    for domain, make, n in (("math", math_rows, args.rows), ("code", code_rows, args.code_rows)):
        results[f"ray_{domain}"] = run("ray", remote, make, n, domain, args.cpus, args.repeats)
    settled = run("ray", remote, settled_rows, args.settled_rows, "math", args.cpus, args.repeats)
    remote.close()
    load_after = os.getloadavg()
    results["load_after"] = load_after

    print("\nRay against the local pool, same CPUs (warm medians):")
    for domain in ("math", "code"):
        lo, ra = results[f"local_{domain}"], results[f"ray_{domain}"]
        same = lo["verdicts"] == ra["verdicts"]
        overhead = lo["warm_rows_per_s"] / ra["warm_rows_per_s"] - 1
        results[f"overhead_{domain}"] = overhead
        print(f"  {domain:<5} local {lo['warm_rows_per_s']:8.1f} rows/s   ray {ra['warm_rows_per_s']:8.1f} rows/s   "
              f"Ray overhead {overhead * 100:+5.1f}%  ({'<= 20%: ok' if overhead <= 0.20 else '> 20%'}); "
              f"verdicts {'identical' if same else 'DIFFER'}")

    o = 1 / settled["warm_rows_per_s"]
    print(f"\nN-node model: driver cost o = {o * 1e3:.3f} ms/row (settled rows, no checks); "
          f"C = {args.cpus_per_node} CPUs per node")
    model = {}
    for domain in ("math", "code"):
        c = args.cpus / results[f"ray_{domain}"]["warm_rows_per_s"]
        ceiling = 1 / o
        line = []
        for nodes in (int(x) for x in args.nodes.split(",")):
            rate = 1 / max(c / (nodes * args.cpus_per_node), o)
            model[f"{domain}_{nodes}"] = rate
            line.append(f"{nodes}: {rate:,.0f}")
        print(f"  {domain:<5} c = {c * 1e3:7.1f} CPU-ms/row -> rows/s by nodes  " + "   ".join(line)
              + f"   (driver-bound past {c / (o * args.cpus_per_node):,.0f} nodes; ceiling {ceiling:,.0f} rows/s)")
        results[f"cost_{domain}_cpu_s"] = c
    results["driver_s_per_row"] = o
    results["model"] = model
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({k: v for k, v in results.items()}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
