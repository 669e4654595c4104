"""Sandbox throughput: our pool (a sandboxed harness that serves up to ``REUSE_MAX`` solutions in
turn, cleared between two, fork per test) against one sandboxed interpreter per test (the
human-eval/LiveCodeBench style of process-per-execution), on the same batch of correct solutions,
the same isolation (bubblewrap or the best tier here), the same dedicated uids and the same
number of workers.

    python bench/sandbox.py [--problems 24] [--tests 20] [--workers N]

Target: ours >= 5x the anchor's tests/s. Ours pays for the hardening (a cgroup per sandbox where the
host allows one, the harness's own root, Landlock and seccomp per test); the anchor gets the same
namespaces, uid and rlimits but no cgroup, so the ratio is if anything understated.

Ours starts sandboxes ahead of time, recycles them, and tears them down in the background
(``branchmerge.sandbox.warm``), so the per-solution overhead reported is what a solution's own wall
time adds beyond its tests; the cold figure (start-up to teardown of one sandbox, nothing
overlapped) and the CPU per solution show what that hides, not removes. Load average and CPU
pressure are printed with the figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from branchmerge.sandbox import Limits, cgroups, run_many, select_tier
from branchmerge.sandbox.cases import parse_tests
from branchmerge.sandbox.compare import compare_stdio
from branchmerge.sandbox.session import Session
from branchmerge.sandbox.supervisor import _execute
from branchmerge.sandbox.tiers import Slot, interpreter, launch

SOLUTIONS = {
    "sum": ("n = int(input())\nprint(sum(map(int, input().split())))\n", lambda xs: str(sum(xs))),
    "sort": ("input()\nprint(*sorted(map(int, input().split())))\n", lambda xs: " ".join(map(str, sorted(xs)))),
    "max_prefix": (
        "from itertools import accumulate\ninput()\nprint(max(accumulate(map(int, input().split()))))\n",
        lambda xs: str(max(sum(xs[: i + 1]) for i in range(len(xs)))),
    ),
    "distinct": (
        "import sys\ndata = sys.stdin.buffer.read().split()\nprint(len(set(data[1:])))\n",
        lambda xs: str(len(set(xs))),
    ),
}


def make_batch(problems: int, tests: int, seed: int = 0) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    names = sorted(SOLUTIONS)
    jobs = []
    for p in range(problems):
        code, answer = SOLUTIONS[names[p % len(names)]]
        inputs, outputs = [], []
        for _ in range(tests):
            xs = [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 200))]
            inputs.append(f"{len(xs)}\n{' '.join(map(str, xs))}\n")
            outputs.append(answer(xs) + "\n")
        jobs.append((code, {"inputs": inputs, "outputs": outputs}))
    return jobs


def anchor(jobs: list[tuple[str, dict]], tier: str, workers: int, limits: Limits) -> list[bool]:
    """A fresh sandboxed interpreter per test, in the same tier and as the same kind of uid."""
    py = interpreter(None)

    def one(job: tuple[str, dict]) -> bool:
        code, tests = job
        with Slot() as slot:
            plan = launch(tier, py, slot.uid, limits, cgroup=False)
            ok = True
            try:
                for inp, out in zip(tests["inputs"], tests["outputs"]):
                    proc = subprocess.run(
                        plan.argv + [code], input=inp, capture_output=True, text=True, cwd=plan.cwd,
                        env=plan.env, timeout=limits.timeout_s,
                        start_new_session=True, **plan.popen,
                    )  # fmt: skip
                    ok = proc.returncode == 0 and compare_stdio(proc.stdout, out)[0]
                    if not ok:
                        break
            finally:
                if plan.scratch:
                    subprocess.run(["rm", "-rf", plan.scratch], check=False)
            return ok

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    limits = Limits()
    tier = select_tier(limits)
    load_before, pressure_before = os.getloadavg()[0], _pressure()
    jobs = make_batch(args.problems, args.tests)
    n_tests = sum(len(t["inputs"]) for _, t in jobs)
    run_many(jobs[:2], limits, args.workers)  # warm-up: the self-test and interpreter probe

    ours_s, anchor_s = [], []
    for _ in range(args.rounds):  # interleaved rounds, best of each: the machine is shared
        start = time.perf_counter()
        results = run_many(jobs, limits, args.workers)
        ours_s.append(time.perf_counter() - start)
        assert all(r.verdict == "accepted" for r in results), [r.verdict for r in results]
        start = time.perf_counter()
        verdicts = anchor(jobs, tier, args.workers, limits)
        anchor_s.append(time.perf_counter() - start)
        assert all(verdicts)

    # per-solution overhead: one worker, one trivial test each; everything outside the test
    trivial = [(f"print({i})\n", {"inputs": [""], "outputs": [f"{i}\n"]}) for i in range(args.problems)]
    time.sleep(0.5)
    run_many(trivial[:2], limits, workers=1)  # reaps what the runs above orphaned, so it is not counted
    before = _cpu()
    single = run_many(trivial, limits, workers=1)
    cpu_ms = (_cpu() - before) / len(trivial) * 1000
    overhead = [r.time_s - sum(t.time_s for t in r.tests) for r in single]

    cold = _cold_ms(trivial[:10], limits, tier)

    ours, anc = n_tests / min(ours_s), n_tests / min(anchor_s)
    group = cgroups.hierarchy()
    print(f"tier {tier}, {len(jobs)} solutions x {args.tests} tests = {n_tests} tests, {args.workers} workers, "
          f"best of {args.rounds}, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after on "
          f"{os.cpu_count()} cores (CPU pressure avg10 {pressure_before} before); cgroup per solution: {group.describe() if group else 'none'}")  # fmt: skip
    print(f"ours   (harness reused, fork per test):        {ours:8.1f} tests/s  ({min(ours_s):.2f} s)")
    print(f"anchor (fresh sandboxed interpreter per test): {anc:8.1f} tests/s  ({min(anchor_s):.2f} s)")
    print(f"ratio: {ours / anc:.2f}x")
    print(
        f"per-solution overhead (a solution's wall time beyond its tests: code hand-over, compile; 1 worker): median "
        f"{statistics.median(overhead) * 1000:.1f} ms, p90 {sorted(overhead)[int(0.9 * len(overhead))] * 1000:.1f} ms; "
        f"CPU per trivial solution (supervisor + sandbox processes, less load-sensitive): {cpu_ms:.1f} ms"
    )
    print(f"cold sandbox, nothing overlapped (start-up to teardown, trivial solution): median {cold:.1f} ms; "
          f"CPU pressure (some, avg10): {_pressure()}")  # fmt: skip


def _cold_ms(jobs: list[tuple[str, dict]], limits: Limits, tier: str) -> float:
    """Wall time of one sandbox started, used and torn down in line, as without the warm pool."""
    py = interpreter(None)
    times = []
    for code, tests in jobs:
        start = time.perf_counter()
        result = _execute(code, parse_tests(tests), limits, tier, py, partial(Session.start, tier, py, limits))
        times.append(time.perf_counter() - start)
        assert result.verdict == "accepted", result
    return statistics.median(times) * 1000


def _pressure() -> str:
    try:
        line = open("/proc/pressure/cpu").readline().split()
        return line[1].split("=")[1] + "%"
    except (OSError, IndexError):
        return "n/a"


def _cpu() -> float:
    """CPU seconds of this process and of every process it has reaped (it reaps the sandboxes')."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
