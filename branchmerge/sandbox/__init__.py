"""Run untrusted generated code against stdin/stdout or call-based tests, isolated and fast.

``run(code, tests, limits)`` for one solution, ``run_many(jobs, limits, workers)`` for a batch;
``doctor()`` reports which isolation tiers work on this machine.
"""

from branchmerge.sandbox.results import LCB_CODES, VERDICTS, Limits, Result, TestResult
from branchmerge.sandbox.supervisor import probe, run, run_many, select_tier

__all__ = ["LCB_CODES", "VERDICTS", "Limits", "Result", "TestResult", "probe", "run", "run_many", "select_tier"]
