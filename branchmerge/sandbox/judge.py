"""Verdicts, decided by the trusted supervisor from facts the solution cannot forge.

The harness reports, per test, what the kernel said (exit status, CPU time and peak RSS from
``wait4``) and whether it stopped the test itself (CPU time, wall clock, output size); the
supervisor adds the cgroup's OOM-kill count and peak. So ``time_limit`` means the CPU time reached
the limit or the wall-clock cap ran out, ``memory_limit`` means the kernel OOM-killed something in
the solution's cgroup, the cgroup's peak during the test went over the limit, or a process's peak
RSS did: a solution that sends itself SIGXCPU or SIGKILL, exits with some status or raises
MemoryError gets ``runtime_error``.

Everything the sandbox sends is parsed with bounds (size, nesting depth), so no output can crash
the supervisor.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from branchmerge.sandbox.cases import Case
from branchmerge.sandbox.compare import compare_call, compare_stdio
from branchmerge.sandbox.harness import wall_cap

MAX_DEPTH = 100  # a returned value nested deeper than this is not an answer


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def number(data: bytes, kind: type = float) -> Any:
    try:
        return kind(data)
    except ValueError:
        return kind(0)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Does ``value`` nest lists/dicts more than ``limit`` deep? (No recursion: any shape is fine.)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def load_result(data: bytes) -> tuple[Any, str]:
    """(decoded envelope, '') or (None, why it is not one). json's C decoder stops at the
    interpreter's recursion limit with RecursionError; anything past MAX_DEPTH is refused before
    a comparison or repr could recurse through it."""
    try:
        value = json.loads(data or b"null")
    except (ValueError, RecursionError) as exc:
        return None, f"unreadable return value ({type(exc).__name__}: nested too deep or not JSON)"
    if too_deep(value, MAX_DEPTH + 1):  # + the {"ok": ...} envelope
        return None, f"the return value nests deeper than {MAX_DEPTH} levels"
    return value, ""


def _signal_name(exit_code: int) -> str:
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"


def verdict(case: Case, mode: str, reply: dict, limits: Any, oom_kills: int,
            together_mb: float | None = None) -> tuple[str, str]:
    """(verdict, one-line reason) of one test. ``together_mb``: what all of the solution's
    processes and files took at their peak during the test, from its cgroup (None without one)."""
    error = text(reply["error"])
    if error:
        if error.startswith("resources:"):  # what the solution holds (tmpfs files, processes) ran out
            return "runtime_error", "the sandbox ran out of resources: " + error.split(":", 1)[1].strip()[:150]
        return "sandbox_error", error[:200]
    killed, cpu = text(reply["killed"]), number(reply["cpu_s"])
    rss_mb, exit_code = number(reply["rss_kb"], int) / 1024, number(reply["exit"], int)
    limit = float(limits.timeout_s)
    if killed == "output":
        return "output_limit", f"more than {int(limits.output_limit_kb)} KiB of output"
    if killed == "wall":
        return "time_limit", f"wall-clock cap of {wall_cap(limit):g}s reached (CPU {cpu:.2f}s)"
    if killed == "cpu" or cpu >= limit:
        return "time_limit", f"CPU time {cpu:.2f}s reached the {limit:g}s limit"
    if oom_kills:
        return "memory_limit", f"killed by the kernel: its processes together went over {int(limits.memory_mb)} MB"
    if together_mb is not None and together_mb > int(limits.memory_mb):
        return "memory_limit", f"its processes and files together took {together_mb:.0f} MB; the limit is {int(limits.memory_mb)} MB"
    if rss_mb > int(limits.memory_mb):
        return "memory_limit", f"peak RSS {rss_mb:.0f} MB is over the {int(limits.memory_mb)} MB limit"
    if exit_code != 0:
        return "runtime_error", f"exit status {exit_code}" if exit_code > 0 else f"killed by {_signal_name(exit_code)}"
    if mode == "stdio":
        ok, why = compare_stdio(text(reply["stdout"]), case.expected)
        return ("accepted" if ok else "wrong_answer"), why
    envelope, why = load_result(reply["result"])
    if why:
        return "wrong_answer", why
    if not isinstance(envelope, dict):
        return "runtime_error", "the function returned nothing (the program exited first?)"
    if "ok" not in envelope:
        return "wrong_answer", str(envelope.get("error", "bad result"))[:200]
    try:
        ok, why = compare_call(envelope["ok"], case.expected, case.apps_style)
    except RecursionError:
        return "wrong_answer", "the return value is too deeply nested to compare"
    return ("accepted" if ok else "wrong_answer"), why
