"""The sandbox's public data types: limits in, results out (``Result.to_dict()`` is the JSON the
CLI prints, and what curation stores as ``verdict_detail``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

VERDICTS = (
    "accepted",
    "wrong_answer",
    "time_limit",
    "memory_limit",
    "runtime_error",
    "compile_error",
    "output_limit",
    "sandbox_error",
)

# LiveCodeBench's per-test result codes, for leaderboard parity (True = passed).
LCB_CODES = {
    "accepted": True,
    "wrong_answer": -2,
    "time_limit": -3,
    "memory_limit": -4,
    "runtime_error": -4,
    "compile_error": -4,
    "output_limit": -4,
    "sandbox_error": -5,
}


@dataclass
class Limits:
    """Per-solution limits and switches. ``tier`` forces an isolation tier (bwrap, unshare,
    landlock, none) instead of the strongest one the start-up self-test finds.

    Time is CPU time, so a busy machine does not turn correct programs into time-outs; the wall
    clock only caps a test at 3x its limit + 1 s (a program that sleeps or blocks). Memory is the
    whole solution's where a cgroup can be made (every process, and its shmem, memfd and tmpfs
    pages; ``sandbox doctor`` says), and each process's peak RSS everywhere."""

    timeout_s: float = 6.0  # per test, CPU seconds (LiveCodeBench's 6 s); wall-clock cap 3x + 1 s
    memory_mb: int = 2048  # the solution's memory: all its processes together (cgroup), each one's peak RSS
    all_tests: bool = False  # default: stop at the first failing test
    output_limit_kb: int = 16384  # stdout + stderr (+ return value) of one test
    unsafe: bool = False  # allow the 'none' tier (no isolation); only when the user asks
    tier: str | None = None
    lcb_prelude: bool = True  # LiveCodeBench's implicit ``from collections import *`` etc.
    processes: int = 64  # the solution's processes and threads (pids cgroup; RLIMIT_NPROC of its uid)
    file_size_mb: int = 64  # RLIMIT_FSIZE: any one file it writes
    open_files: int = 64  # RLIMIT_NOFILE
    python: str | None = None  # interpreter used inside the sandbox (default: chosen at start-up)
    compile_timeout_s: float = 30.0  # C++: g++ CPU and wall time, once per solution, under the same memory limit
    disk_mb: int = 64  # all the files it writes: the size of its tmpfs /tmp (and /dev/shm)


@dataclass
class TestResult:
    verdict: str
    time_s: float  # wall clock
    index: int = 0
    cpu_s: float = 0.0  # what the time limit is checked against
    memory_kb: int = 0  # peak RSS of the test's process
    detail: str = ""  # why it failed, one line


@dataclass
class Result:
    verdict: str
    tests: list[TestResult]
    stderr: str
    tier: str
    passed: int = 0
    total: int = 0
    time_s: float = 0.0  # wall clock of the whole run: start-up, compile, tests, teardown
    python: str = ""
    layers: dict = field(default_factory=dict)
    detail: str = ""
    cpu_s: float = 0.0  # CPU time of the whole solution (its cgroup's; else the sum over its tests)

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"

    def to_dict(self) -> dict:
        return asdict(self)

    def lcb_codes(self) -> list:
        """Per executed test, the code LiveCodeBench's runner reports (True, -2, -3, -4, -5)."""
        if self.verdict in ("compile_error", "sandbox_error") and not self.tests:
            return [LCB_CODES[self.verdict]]
        return [LCB_CODES[t.verdict] for t in self.tests]
