"""The sandbox's public data types: limits in, results out (``Result.to_dict()`` is the JSON the
CLI prints, and what curation stores as ``verdict_detail``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from branchmerge import settings
from branchmerge.settings import setting

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


TIERS = ("bwrap", "unshare", "landlock", "none")  # strongest first (``tiers`` says what each is)
LANGUAGES = ("python", "cpp")


@dataclass
class Limits:
    """Per-solution limits and switches, declared once (``branchmerge.settings``): the options of
    ``sandbox run`` are generated from these fields. ``tier`` forces an isolation tier instead of
    the strongest one the start-up self-test finds.

    Time is CPU time, so a busy machine does not turn correct programs into time-outs; the wall
    clock only caps a test at 3x its limit + 1 s (a program that sleeps or blocks). Memory is the
    whole solution's where a cgroup can be made (every process, and its shmem, memfd and tmpfs
    pages; ``sandbox doctor`` says), and each process's peak RSS everywhere."""

    timeout_s: float = setting(6.0, gt=0, help="Per test, CPU seconds (LiveCodeBench's 6 s); wall-clock cap 3x + 1 s.")
    memory_mb: int = setting(2048, ge=1, help="The whole solution's memory: all its processes, memfds and files "
                             "together where a cgroup can be made (see sandbox doctor), else each process's.")
    all_tests: bool = setting(False, help="Run every test instead of stopping at the first failure.")
    output_limit_kb: int = setting(16384, ge=1, help="Cap on one test's stdout + stderr (+ return value).")
    unsafe: bool = setting(False, help="Allow the 'none' tier (no isolation at all).")
    tier: str | None = setting(None, choices=TIERS, help="Force an isolation tier instead of the strongest working one.")
    lcb_prelude: bool = setting(True, help="LiveCodeBench's implicit imports (from collections import * ...).")
    processes: int = setting(64, ge=1, help="The solution's processes and threads (pids cgroup; RLIMIT_NPROC).")
    file_size_mb: int = setting(64, ge=1, help="Any one file it writes (RLIMIT_FSIZE).")
    open_files: int = setting(64, ge=8, help="Open files per process (RLIMIT_NOFILE).")
    python: str | None = setting(None, help="Interpreter inside the sandbox (default: chosen at start-up).")
    compile_timeout_s: float = setting(30.0, gt=0, help="C++: g++ CPU and wall time, once per solution, under "
                                       "the same memory limit.")
    disk_mb: int = setting(64, ge=1, help="All the files it writes: the size of its tmpfs /tmp and /dev/shm.")

    def __post_init__(self) -> None:
        settings.validate(self)


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
