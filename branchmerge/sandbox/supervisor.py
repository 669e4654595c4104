"""The trusted side: start one sandboxed harness per solution (in a cgroup of its own where the
host allows one), feed it the tests one by one, judge what comes back (``judge``), and tear
everything down.

A batch always gets one result per solution: whatever a solution does, its failure stays its own
(``sandbox_error`` at worst), and a harness that cannot start is a ``sandbox_error``.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from branchmerge.errors import UserError, choice_error
from branchmerge.sandbox import cgroups
from branchmerge.sandbox.cases import Suite, parse_tests
from branchmerge.sandbox.harness import READY_FIELDS, REPLY_FIELDS, wall_cap
from branchmerge.sandbox.judge import number, text, verdict
from branchmerge.sandbox.results import LANGUAGES, Limits, Result, TestResult
from branchmerge.sandbox.tiers import (
    HARNESS_MB,
    NAMESPACES,
    SAFE_TIERS,
    TIERS,
    Interpreter,
    Slot,
    adopt_orphans,
    interpreter,
    kill_uid,
    launch,
    memory_backstop,
    remove_tree,
)

_HERE = Path(__file__).parent
HARNESS = (_HERE / "confine.py").read_text() + "\n" + (_HERE / "harness.py").read_text()
STARTUP_S = 20.0  # the harness must be up and the code compiled within this
SLACK_S = 10.0  # beyond a test's wall-clock cap before the supervisor gives up on the harness
EXCERPT = 2000
# holds the sandbox back until the supervisor has put it into its cgroup, so nothing it forks
# (bwrap's and unshare's own processes included) starts outside
GATE = ["/bin/sh", "-c", 'read -r _ && exec "$@"', "sh"]


class _Channel:
    """To the harness: length-prefixed ``marshal`` (cheap to load in there). From it: a count and
    length-prefixed byte fields, parsed defensively (the harness shares the solution's sandbox)."""

    def __init__(self, proc: subprocess.Popen, cap: int) -> None:
        self.proc, self.cap = proc, cap
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def send(self, message: dict) -> bool:
        body = marshal.dumps(message, 4)  # format 4: readable by any Python 3 in the sandbox
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def _fill(self, n: int, deadline: float) -> bool | None:
        """True when n bytes are buffered; False on EOF; None at the deadline."""
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv(self, names: tuple[str, ...], deadline: float) -> dict | str:
        """{name: bytes}, or 'eof' / 'timeout' / 'oversized' / 'garbled'."""
        got = self._fill(4, deadline)
        if not got:
            return "eof" if got is False else "timeout"
        size = struct.unpack(">I", self.buf[:4])[0]
        if size > self.cap:
            return "oversized"
        got = self._fill(4 + size, deadline)
        if not got:
            return "eof" if got is False else "timeout"
        body, self.buf = memoryview(self.buf[4 : 4 + size]), self.buf[4 + size :]
        fields, pos = [], 4
        try:
            count = struct.unpack(">I", body[:4])[0]
            for _ in range(min(count, len(names) + 1)):
                n = struct.unpack(">I", body[pos : pos + 4])[0]
                fields.append(bytes(body[pos + 4 : pos + 4 + n]))
                pos += 4 + n
        except struct.error:
            return "garbled"
        if len(fields) != len(names) or count != len(names) or pos != size:
            return "garbled"
        return dict(zip(names, fields))


class _Session:
    """One harness process for one solution in one tier, in its own cgroup when there is one."""

    def __init__(self, tier: str, py: Interpreter, uid: int | None, limits: Limits) -> None:
        self.tier, self.uid, self.limits = tier, uid, limits
        self.group, self.proc, self.plan = None, None, None
        if uid is not None:
            _adopt_orphans_once()
        self.log = tempfile.TemporaryFile()
        try:
            if cgroups.hierarchy() is not None:
                self.group = cgroups.Group.create((int(limits.memory_mb) + HARNESS_MB) << 20, int(limits.processes) + 8)
            self.plan = launch(tier, py, uid, limits, cgroup=self.group is not None)
            self.proc = subprocess.Popen(
                (GATE if self.group else []) + self.plan.argv + [HARNESS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                cwd=self.plan.cwd,
                env=self.plan.env,
                start_new_session=True,
                **self.plan.popen,
            )
            if self.group:
                self.group.attach(self.proc.pid)
                self.proc.stdin.write(b"\n")
        except OSError:
            self.close()
            raise
        cap = 2 * int(limits.output_limit_kb) * 1024 + (1 << 20)
        self.channel = _Channel(self.proc, cap)

    def oom_kills(self) -> int:
        return self.group.oom_kills() if self.group else 0

    def harness_log(self) -> str:
        self.log.seek(0)
        return self.log.read()[-EXCERPT:].decode("utf-8", "replace")

    def close(self) -> None:
        """Kill everything of this sandbox, then remove its cgroup and scratch dir (in that order:
        nothing may still be writing when the dir goes)."""
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        if self.group is not None:
            self.group.release()
        if self.uid is not None:
            # a daemon that left the session survives without a pid namespace or cgroup; with
            # either, the kernel is already killing everything inside and one sweep is enough
            contained = "pid" in NAMESPACES[self.tier] or self.group is not None
            kill_uid(self.uid, rounds=1 if contained else 50)
        if self.plan is not None and self.plan.scratch:
            try:
                remove_tree(self.plan.scratch)
            except OSError:
                pass
        self.log.close()


@cache
def _adopt_orphans_once() -> None:
    adopt_orphans()


def _execute(
    code: str, suite: Suite, limits: Limits, tier: str, py: Interpreter, uid: int | None, language: str = "python"
) -> Result:
    started = time.monotonic()
    result = Result("sandbox_error", [], "", tier, total=len(suite.cases), python=py.version)
    try:
        session = _Session(tier, py, uid, limits)
    except OSError as exc:
        result.detail = f"could not start the {tier} sandbox: {exc}"
        return result
    try:
        _serve(session, code, suite, limits, language, result)
    except Exception as exc:  # noqa: BLE001  (a bug here must cost this solution its result, not the batch)
        result.verdict, result.detail = "sandbox_error", f"supervisor error: {type(exc).__name__}: {exc}"[:300]
    finally:
        if session.group is not None:
            result.cpu_s = round(session.group.cpu_s(), 4)
        session.close()
        result.time_s = round(time.monotonic() - started, 4)
    if not result.cpu_s:
        result.cpu_s = round(sum(t.cpu_s for t in result.tests), 4)
    return result


def _serve(session: _Session, code: str, suite: Suite, limits: Limits, language: str, result: Result) -> None:
    job = {
        "code": code,
        "language": language,
        "compile_timeout_s": float(limits.compile_timeout_s),
        "mode": suite.mode,
        "fn_name": suite.fn_name,
        "timeout_s": float(limits.timeout_s),
        "memory_mb": int(limits.memory_mb),
        "rlimit_as": None if session.group else memory_backstop(limits),
        "output_limit": int(limits.output_limit_kb) * 1024,
        "confine": session.plan.confine,
        "site": list(interpreter(limits.python).site),
        "prelude": interpreter(limits.python).exports if limits.lcb_prelude else None,
    }
    sent = session.channel.send(job)
    startup = STARTUP_S + (float(limits.compile_timeout_s) if language == "cpp" else 0.0)
    ready = session.channel.recv(READY_FIELDS, time.monotonic() + startup) if sent else "eof"
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


def _run_cases(session: _Session, suite: Suite, limits: Limits, result: Result) -> None:
    last_stderr = ""
    for index, case in enumerate(suite.cases):
        ooms = session.oom_kills()
        sent = session.channel.send(case.send)
        deadline = time.monotonic() + wall_cap(float(limits.timeout_s)) + SLACK_S
        reply = session.channel.recv(REPLY_FIELDS, deadline) if sent else "eof"
        ooms = session.oom_kills() - ooms
        if isinstance(reply, dict):
            name, why = verdict(case, suite.mode, reply, limits, ooms)
            files_mb = session.group.shmem_mb() if session.group else 0.0
            if name == "accepted" and files_mb > int(limits.disk_mb):  # the landlock tier has no tmpfs to fill up
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
    with Slot() as slot:
        if tier == "landlock" and slot.uid is None:
            from branchmerge.sandbox.confine import landlock_abi

            if landlock_abi() < 6:
                return False, "without root (a uid of its own) it needs Landlock ABI >= 6 to stop signals to your processes", {}
        res = _execute(code, suite, Limits(timeout_s=10), tier, py, slot.uid)
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

    def one(i: int) -> Result:
        try:
            with Slot() as slot:
                return _execute(jobs[i][0], suites[i], limits, tier, py, slot.uid, language)
        except Exception as exc:  # noqa: BLE001  (e.g. every uid busy: this job's error, not the batch's)
            return Result("sandbox_error", [], "", tier, total=len(suites[i].cases), python=py.version,
                          detail=f"supervisor error: {type(exc).__name__}: {exc}"[:300])  # fmt: skip

    if len(jobs) == 1:
        return [one(0)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(len(jobs))))
