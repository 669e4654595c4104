"""The trusted side: start one sandboxed harness per solution, feed it the tests one by one,
compare what comes back with the expected outputs, and tear everything down.

Verdicts come from the comparison, never from the solution's exit code; a test that the harness
does not answer in time is a time-out; a harness that cannot start is a ``sandbox_error``.
"""

from __future__ import annotations

import json
import marshal
import os
import select
import shutil
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
from branchmerge.sandbox.cases import Case, Suite, parse_tests
from branchmerge.sandbox.compare import compare_call, compare_stdio
from branchmerge.sandbox.harness import READY_FIELDS, REPLY_FIELDS
from branchmerge.sandbox.results import Limits, Result, TestResult
from branchmerge.sandbox.tiers import (
    ENV,
    NAMESPACES,
    SAFE_TIERS,
    TIERS,
    Interpreter,
    Slot,
    adopt_orphans,
    interpreter,
    kill_uid,
    launch,
)

HARNESS = (Path(__file__).with_name("harness.py")).read_text()
STARTUP_S = 20.0  # the harness must be up and the code compiled within this
SLACK_S = 10.0  # beyond the per-test limit before the supervisor gives up on the harness
EXCERPT = 2000


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
            for _ in range(count):
                n = struct.unpack(">I", body[pos : pos + 4])[0]
                fields.append(bytes(body[pos + 4 : pos + 4 + n]))
                pos += 4 + n
        except struct.error:
            return "garbled"
        if len(fields) != len(names) or pos != size:
            return "garbled"
        return dict(zip(names, fields))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _number(data: bytes, kind: type = float) -> float:
    try:
        return kind(data)
    except ValueError:
        return kind(0)


def _verdict(case: Case, mode: str, reply: dict) -> tuple[str, str]:
    status = _text(reply["status"])
    if status != "ok":
        known = {"time_limit": "time limit exceeded", "memory_limit": "memory limit exceeded",
                 "output_limit": "output limit exceeded", "runtime_error": None}  # fmt: skip
        if status not in known:
            return "sandbox_error", "garbled harness reply"
        return status, known[status] or f"exit status {_number(reply['exit'], int)}"
    if mode == "stdio":
        ok, why = compare_stdio(_text(reply["stdout"]), case.expected)
        return ("accepted" if ok else "wrong_answer"), why
    try:
        envelope = json.loads(reply["result"] or b"null")
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        return "runtime_error", "the function returned nothing (the program exited first?)"
    if "ok" not in envelope:
        return "wrong_answer", str(envelope.get("error", "bad result"))[:200]
    ok, why = compare_call(envelope["ok"], case.expected, case.apps_style)
    return ("accepted" if ok else "wrong_answer"), why


class _Session:
    """One harness process for one solution in one tier."""

    def __init__(self, tier: str, py: Interpreter, uid: int | None, limits: Limits) -> None:
        self.tier, self.uid, self.limits = tier, uid, limits
        if uid is not None:
            _adopt_orphans_once()
        self.plan = launch(tier, py, uid, limits)
        self.log = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                self.plan.argv + [HARNESS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                cwd=self.plan.cwd,
                env={} if tier == "bwrap" else dict(ENV),  # bwrap sets the sandbox's own
                start_new_session=True,
                **self.plan.popen,
            )
        except OSError:
            self.log.close()
            if self.plan.scratch:
                shutil.rmtree(self.plan.scratch, ignore_errors=True)
            raise
        cap = 2 * int(limits.output_limit_kb) * 1024 + (1 << 20)
        self.channel = _Channel(self.proc, cap)

    def harness_log(self) -> str:
        self.log.seek(0)
        return self.log.read()[-EXCERPT:].decode("utf-8", "replace")

    def close(self) -> None:
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
        if self.uid is not None:
            # a daemon that left the session survives without a pid namespace; with one, the
            # kernel is already killing everything inside and a single sweep is enough
            kill_uid(self.uid, rounds=1 if "pid" in NAMESPACES[self.tier] else 50)
        if self.plan.scratch:
            shutil.rmtree(self.plan.scratch, ignore_errors=True)
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
        job = {
            "code": code,
            "language": language,
            "compile_timeout_s": float(limits.compile_timeout_s),
            "mode": suite.mode,
            "fn_name": suite.fn_name,
            "timeout_s": float(limits.timeout_s),
            "memory_mb": int(limits.memory_mb),
            "output_limit": int(limits.output_limit_kb) * 1024,
            "confine": session.plan.confine,
            "site": list(py.site),
            "prelude": py.exports if limits.lcb_prelude else None,
        }
        sent = session.channel.send(job)
        startup = STARTUP_S + (float(limits.compile_timeout_s) if language == "cpp" else 0.0)
        ready = session.channel.recv(READY_FIELDS, time.monotonic() + startup) if sent else "eof"
        if not isinstance(ready, dict) or ready["ready"] != b"ready":
            result.detail = f"the harness did not start ({ready if isinstance(ready, str) else 'garbled'})"
            result.stderr = session.harness_log()
            return result
        result.python = _text(ready["python"])
        result.layers = {
            "rlimits": _text(ready["rlimits"]).split(","),
            "landlock_abi": _number(ready["landlock_abi"], int),
            "seccomp": ready["seccomp"] == b"1",
        }
        compile_error = _text(ready["compile_error"])
        if compile_error:
            result.verdict, result.stderr = "compile_error", compile_error
            lines = compile_error.strip().splitlines()
            errors = [line for line in lines if "error:" in line] if language == "cpp" else []
            result.detail = (errors or lines[-1:])[0][:200]  # g++'s first error; Python's last line
            return result
        _run_cases(session, suite, limits, result)
        return result
    finally:
        session.close()
        result.time_s = round(time.monotonic() - started, 4)


def _run_cases(session: _Session, suite: Suite, limits: Limits, result: Result) -> None:
    last_stderr = ""
    for index, case in enumerate(suite.cases):
        sent = session.channel.send(case.send)
        deadline = time.monotonic() + float(limits.timeout_s) + SLACK_S
        reply = session.channel.recv(REPLY_FIELDS, deadline) if sent else "eof"
        if isinstance(reply, dict):
            verdict, why = _verdict(case, suite.mode, reply)
            test = TestResult(
                verdict, _number(reply["time_s"]), index, _number(reply["cpu_s"]), _number(reply["rss_kb"], int), why
            )
            last_stderr = _text(reply["stderr"])
        elif reply == "timeout":
            test = TestResult("time_limit", float(limits.timeout_s), index, detail="the harness stopped answering")
        elif reply in ("oversized", "garbled"):
            test = TestResult("sandbox_error", 0.0, index, detail=f"{reply} harness reply")
        else:
            log = session.harness_log()
            infra = "Traceback" in log or "bwrap:" in log
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


@cache
def probe(tier: str, python: str | None = None) -> tuple[bool, str, dict]:
    """Start-up self-test: run a real program through the tier. (works, why not, layers)."""
    py = interpreter(python)
    if py is None:
        return False, "no usable python3 for the sandbox (install python3 system-wide)", {}
    if tier in ("bwrap", "unshare") and shutil.which(tier) is None:
        return False, f"{tier} is not installed", {}
    suite = parse_tests({"inputs": ["2 3\n"], "outputs": ["5\n"]})
    with Slot() as slot:
        res = _execute("a, b = map(int, input().split())\nprint(a + b)\n", suite, Limits(timeout_s=10), tier, py, slot.uid)
    if res.verdict != "accepted":
        return False, (res.detail + " " + res.stderr.strip()).strip()[:300], res.layers
    if tier == "landlock" and not res.layers.get("landlock_abi"):
        return False, "Landlock is not available in this kernel", res.layers
    if tier == "landlock" and not (res.layers.get("seccomp") or res.layers["landlock_abi"] >= 4):
        return False, "neither seccomp nor Landlock >= 4 can block the network here", res.layers
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


LANGUAGES = ("python", "cpp")


def _check_language(language: str, suites: list[Suite]) -> None:
    if language not in LANGUAGES:
        raise choice_error("language", language, LANGUAGES)
    if language == "cpp":
        if shutil.which("g++") is None:
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
    results come back in the order of ``jobs``."""
    limits = limits or Limits()
    suites = [parse_tests(tests) for _, tests in jobs]
    _check_language(language, suites)
    tier = select_tier(limits)
    py = interpreter(limits.python)

    def one(i: int) -> Result:
        with Slot() as slot:
            return _execute(jobs[i][0], suites[i], limits, tier, py, slot.uid, language)

    if len(jobs) == 1:
        return [one(0)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(len(jobs))))


def doctor_report() -> dict:
    """Every tier's self-test, the tier ``run`` would pick, and what runs inside."""
    from branchmerge.sandbox.tiers import SLOT_UIDS

    py = interpreter(None)
    rows = []
    for tier in TIERS:
        ok, why, layers = probe(tier)
        layers = {"namespaces": ",".join(NAMESPACES[tier]) or "none", **layers} if ok else layers
        rows.append({"tier": tier, "works": ok, "why_not": why, "layers": layers, "safe": tier in SAFE_TIERS})
    selected = next((r["tier"] for r in rows if r["works"] and r["safe"]), None)
    uid = f"dedicated per sandbox ({SLOT_UIDS.start}-{SLOT_UIDS.stop - 1})" if os.geteuid() == 0 else "the caller's"
    return {
        "tiers": rows,
        "selected": selected,
        "python": f"{py.path} {py.version}" if py else None,
        "uid": uid,
    }
