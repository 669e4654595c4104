"""The trusted side: a sandboxed harness per solution (``session``, started ahead of time by
``warm``), the tests fed to it one by one, what comes back judged (``judge``), everything torn down.

A batch always gets one result per solution: whatever a solution does, its failure stays its own
(``sandbox_error`` at worst), and a harness that cannot start is a ``sandbox_error``.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path

from branchmerge.errors import UserError, choice_error
from branchmerge.sandbox.cases import Suite, parse_tests
from branchmerge.sandbox.harness import wall_cap
from branchmerge.sandbox.judge import number, text, verdict
from branchmerge.sandbox.results import LANGUAGES, Limits, Result, TestResult
from branchmerge.sandbox.session import EXCERPT, Session
from branchmerge.sandbox.tiers import SAFE_TIERS, TIERS, Interpreter, interpreter
from branchmerge.sandbox.warm import Launcher, Lease

STARTUP_S = 20.0  # the harness must be up and the code compiled within this
SLACK_S = 10.0  # beyond a test's wall-clock cap before the supervisor gives up on the harness
GROUP_CPU_SLACK_S = 0.1  # the harness's own fork and bookkeeping per test, charged to the same cgroup
HARNESS_SHARE_MB = 8.0  # the harness's own memory during a test beyond the output it buffers


def _execute(
    code: str, suite: Suite, limits: Limits, tier: str, py: Interpreter, take: Callable[[], Session],
    language: str = "python", retire: Callable[[Session], None] = Session.close,
) -> Result:
    """One solution on a sandbox from ``take()`` (started ahead of time by a ``Launcher``, or just
    now); ``retire`` hands it back (a ``Lease`` recycles it for the next solution or closes it in
    the background; the default closes it at once). ``time_s`` runs from
    taking the sandbox to the verdict."""
    started = time.monotonic()
    result = Result("sandbox_error", [], "", tier, total=len(suite.cases), python=py.version)
    try:
        session = take()
    except OSError as exc:
        result.detail = f"could not start the {tier} sandbox: {exc}"
        return result
    try:
        _serve(session, code, suite, limits, language, result)
    except Exception as exc:  # noqa: BLE001  (a bug here must cost this solution its result, not the batch)
        result.verdict, result.detail = "sandbox_error", f"supervisor error: {type(exc).__name__}: {exc}"[:300]
        session.spoiled = True
    except BaseException:  # interrupted mid-exchange: the sandbox is closed, not asked to clear up
        session.spoiled = True
        raise
    finally:
        if session.group is not None:
            result.cpu_s = round(session.cpu_s(), 4)
        result.time_s = round(time.monotonic() - started, 4)
        retire(session)
    if not result.cpu_s:
        result.cpu_s = round(sum(t.cpu_s for t in result.tests), 4)
    return result


def _serve(session: Session, code: str, suite: Suite, limits: Limits, language: str, result: Result) -> None:
    sent = session.begin(code, suite.mode, suite.fn_name)
    startup = STARTUP_S + (float(limits.compile_timeout_s) if language == "cpp" else 0.0)
    ready = session.ready(time.monotonic() + startup) if sent else "eof"
    if not isinstance(ready, dict) or ready["ready"] != b"ready":
        result.detail = f"the harness did not start ({ready if isinstance(ready, str) else 'garbled'})"
        result.stderr = session.harness_log()
        return
    result.python = text(ready["python"])
    result.layers = {
        "rlimits": text(ready["rlimits"]).split(","),
        "landlock_abi": number(ready["landlock_abi"], int),
        "seccomp": ready["seccomp"] == b"1",
        "root": text(ready["root"]) if session.tier != "bwrap" else "own",
        "cgroup": f"v{session.group.version}" if session.group else None,
    }
    compile_error = text(ready["compile_error"])
    if compile_error:
        result.verdict, result.stderr = "compile_error", compile_error[-EXCERPT:]
        lines = compile_error.strip().splitlines()
        errors = [line for line in lines if "error:" in line] if language == "cpp" else []
        result.detail = (errors or lines[-1:] or ["compilation failed"])[0][:200]  # g++'s first error; Python's last line
        if session.oom_kills():
            result.detail = f"the compiler went over the {int(limits.memory_mb)} MB memory limit"
        return
    _run_cases(session, suite, limits, result)


def _together_mb(session: Session, base_mb: float | None, reply: dict) -> float | None:
    """What the solution's processes and files took together at their peak during one test: the
    cgroup's peak less what it held before the test, less what the harness itself may have held
    meanwhile (the output it buffered, up to ~5 copies while reading and sending it, and a fixed
    share for its pipes and bookkeeping), so that a solution is never charged for the harness."""
    if base_mb is None or session.group is None:
        return None
    peak_mb = session.group.peak_mb()
    if peak_mb is None:
        return None
    output_mb = sum(len(reply[key]) for key in ("stdout", "stderr", "result")) / (1 << 20)
    return max(peak_mb - base_mb - 5 * output_mb - HARNESS_SHARE_MB, 0.0)


def _files_mb(session: Session, disk_mb: int) -> float:
    """What the solution's files take (0.0 without a cgroup). The cgroup's whole usage, one number,
    is read first: files are part of it, so a usage within the limit settles it without parsing
    the (long) memory.stat after every test."""
    if session.group is None or session.group.usage_mb() <= disk_mb:
        return 0.0
    return session.group.shmem_mb()


def _run_cases(session: Session, suite: Suite, limits: Limits, result: Result) -> None:
    last_stderr = ""
    ooms_before = session.oom_kills()  # one read per test: what one test ends with, the next starts with
    cpu_before = session.group.cpu_s() if session.group else 0.0
    for index, case in enumerate(suite.cases):
        base_mb = session.group.start_peak() if session.group else None
        reply = session.test(case.send, time.monotonic() + wall_cap(float(limits.timeout_s)) + SLACK_S)
        ooms_after = session.oom_kills()
        ooms, ooms_before = ooms_after - ooms_before, ooms_after
        cpu_after = session.group.cpu_s() if session.group else 0.0
        group_cpu, cpu_before = cpu_after - cpu_before, cpu_after
        if isinstance(reply, dict):
            name, why = verdict(case, suite.mode, reply, limits, ooms, _together_mb(session, base_mb, reply))
            if name == "accepted" and group_cpu > float(limits.timeout_s) + GROUP_CPU_SLACK_S:
                # children it never reaped are not in the test process's own CPU time; the cgroup counts them
                name, why = "time_limit", (f"its processes together used {group_cpu:.2f}s of CPU; the limit is "
                                           f"{float(limits.timeout_s):g}s")
            files_mb = _files_mb(session, int(limits.disk_mb)) if name == "accepted" else 0.0
            if files_mb > int(limits.disk_mb):  # the landlock tier has no tmpfs to fill up
                name, why = "runtime_error", f"its files take {files_mb:.0f} MB; the limit is {int(limits.disk_mb)} MB"
            test = TestResult(
                name, number(reply["time_s"]), index, number(reply["cpu_s"]), number(reply["rss_kb"], int), why
            )
            last_stderr = text(reply["stderr"])
        elif reply == "timeout":
            test = TestResult("time_limit", wall_cap(float(limits.timeout_s)), index, detail="the harness stopped answering")
        elif reply in ("oversized", "garbled"):
            test = TestResult("sandbox_error", 0.0, index, detail=f"{reply} harness reply")
        elif ooms:
            test = TestResult("memory_limit", 0.0, index, detail="the kernel OOM-killed the sandbox")
        else:
            log = session.harness_log()
            infra = "Traceback" in log or "bwrap:" in log or "unshare:" in log
            test = TestResult(
                "sandbox_error" if infra else "runtime_error",
                0.0,
                index,
                detail="the harness failed" if infra else "the harness was killed (by the solution?)",
            )
            last_stderr = log if infra else last_stderr
        result.tests.append(test)
        if test.verdict == "accepted":
            result.passed += 1
        elif result.verdict == "sandbox_error" and not result.detail:
            result.verdict, result.detail, result.stderr = test.verdict, test.detail, last_stderr[-EXCERPT:]
        if test.verdict != "accepted" and (not limits.all_tests or not isinstance(reply, dict)):
            break
    if result.passed == len(suite.cases):
        result.verdict, result.stderr = "accepted", last_stderr[-EXCERPT:]


# ---------------------------------------------------------------- tier selection

# The self-test: a real a+b program, and (in the safe tiers) proof that the seccomp filter holds
# (setpriority on its parent, the harness, must be refused).
_PROBE = "a, b = map(int, input().split())\nprint(a + b)\n"
_PROBE_FILTER = "import os\ntry:\n    os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)\n    print('open')\nexcept OSError:\n    print('held')\n"


@cache
def probe(tier: str, python: str | None = None) -> tuple[bool, str, dict]:
    """Start-up self-test: run a real program through the tier. (works, why not, layers)."""
    py = interpreter(python)
    if py is None:
        return False, "no usable python3 for the sandbox (install python3 system-wide)", {}
    if tier in ("bwrap", "unshare") and not any(os.access(Path(d) / tier, os.X_OK) for d in os.get_exec_path()):
        return False, f"{tier} is not installed", {}
    safe = tier in SAFE_TIERS
    code, expected = (_PROBE + _PROBE_FILTER, "5\nheld\n") if safe else (_PROBE, "5\n")
    suite = parse_tests({"inputs": ["2 3\n"], "outputs": [expected]})
    if tier == "landlock" and os.geteuid() != 0:
        from branchmerge.sandbox.confine import landlock_abi

        if landlock_abi() < 6:
            return False, "without root (a uid of its own) it needs Landlock ABI >= 6 to stop signals to your processes", {}
    limits = Limits(timeout_s=10)
    res = _execute(code, suite, limits, tier, py, partial(Session.start, tier, py, limits))
    if res.verdict != "accepted":
        why = "the seccomp filter does not hold" if "open" in str(res.tests[:1]) else res.detail
        return False, (why + " " + res.stderr.strip()).strip()[:300], res.layers
    if tier == "landlock" and not res.layers.get("landlock_abi"):
        return False, "Landlock is not available in this kernel", res.layers
    return True, "", res.layers


def select_tier(limits: Limits) -> str:
    """The forced tier if it works, else the strongest working safe tier; 'none' only if unsafe."""
    if limits.tier is not None:
        if limits.tier not in TIERS:
            raise choice_error("sandbox tier", limits.tier, TIERS)
        if limits.tier == "none" and not limits.unsafe:
            raise UserError("the 'none' tier runs untrusted code with no isolation; pass --unsafe to allow it")
        ok, why, _ = probe(limits.tier, limits.python)
        if not ok:
            raise UserError(f"sandbox tier {limits.tier!r} does not work here: {why}", exit_code=3)
        return limits.tier
    reasons = []
    for tier in SAFE_TIERS:
        ok, why, _ = probe(tier, limits.python)
        if ok:
            return tier
        reasons.append(f"{tier}: {why}")
    if limits.unsafe and probe("none", limits.python)[0]:
        return "none"
    raise UserError(
        "no isolation tier works on this machine (" + "; ".join(reasons) + "). Install bubblewrap "
        "(apt-get install bubblewrap) or pass --unsafe to run without isolation.",
        exit_code=3,
    )


# ---------------------------------------------------------------- public API


def _check_language(language: str, suites: list[Suite]) -> None:
    if language not in LANGUAGES:
        raise choice_error("language", language, LANGUAGES)
    if language == "cpp":
        if not any(os.access(Path(d) / "g++", os.X_OK) for d in os.get_exec_path()):
            raise UserError("C++ solutions need g++ on this machine: apt-get install g++", exit_code=3)
        if any(s.mode == "call" for s in suites):
            raise UserError("call-based tests (fn_name) are Python-only; C++ solutions read stdin")


def run(code: str, tests: dict, limits: Limits | None = None, language: str = "python") -> Result:
    """Run one solution against its tests in the strongest available sandbox."""
    return run_many([(code, tests)], limits, workers=1, language=language)[0]


def run_many(
    jobs: Sequence[tuple[str, dict]],
    limits: Limits | None = None,
    workers: int | None = None,
    language: str = "python",
) -> list[Result]:
    """Run (code, tests) pairs on a pool of ``workers`` sandboxes (default: one per core); the
    results come back in the order of ``jobs``, one per job whatever any solution does."""
    limits = limits or Limits()
    suites = [parse_tests(tests) for _, tests in jobs]
    _check_language(language, suites)
    tier = select_tier(limits)
    py = interpreter(limits.python)

    results: list[Result | None] = [None] * len(jobs)
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(jobs)):
        pending.put(i)

    leases: list[Lease] = []

    def work(launcher: Launcher) -> None:
        """One worker: the next job while any is left, on the sandbox it holds while that can be reused."""
        lease = Lease(launcher)
        leases.append(lease)
        try:
            while True:
                try:
                    i = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = _execute(jobs[i][0], suites[i], limits, tier, py, lease.take, language, lease.retire)
                except Exception as exc:  # noqa: BLE001  (e.g. every uid busy: this job's error, not the batch's)
                    results[i] = Result("sandbox_error", [], "", tier, total=len(suites[i].cases), python=py.version,
                                        detail=f"supervisor error: {type(exc).__name__}: {exc}"[:300])  # fmt: skip
        finally:
            lease.close()

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    # sandboxes start ahead of the solutions they serve (``warm``): one per worker
    with Launcher(partial(Session.start, tier, py, limits, language), len(jobs), ahead=workers) as launcher:
        if workers <= 1:
            work(launcher)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(work, launcher) for _ in range(workers)]
                try:
                    for future in futures:
                        future.result()
                except BaseException:  # Ctrl-C: no solution starts any more, the running ones end now
                    _abandon(pending, leases)
                    raise
    return results


def _abandon(pending: queue.SimpleQueue[int], leases: list[Lease]) -> None:
    while True:
        try:
            pending.get_nowait()
        except queue.Empty:
            break
    for lease in list(leases):
        session = lease.session
        if session is not None:
            session.stop()
