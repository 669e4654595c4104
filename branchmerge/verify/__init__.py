"""Verifiers: math, science and code verdicts, shared by curation and evaluation.

``grade`` grades one completion, ``grade_rows`` a batch of generation rows (process pool for the
math-verify checks, the sandbox for code). ``shuffle_options`` builds the deterministic GPQA
option order for one (problem, sample, seed).
"""

from branchmerge.verify.grader import Verdict, grade, grade_rows
from branchmerge.verify.science import shuffle_options

__all__ = ["Verdict", "grade", "grade_rows", "shuffle_options"]
