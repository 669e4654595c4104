"""Verifiers: math, science and code verdicts, shared by curation and evaluation.

``grade(domain, completion, reference, finish_reason, **options)`` grades one completion,
``grade_rows(rows, domain, workers, **options)`` a batch of generation rows (math-verify checks in
a kept-alive process pool with per-pair deadlines, code through the sandbox); every verdict is one
of ``records.VERDICTS`` and its ``verdict_detail`` holds ``extracted``, ``gold`` and the ``rule``
that decided (science adds ``strict``/``lenient``, code the sandbox result under ``sandbox``).
``shuffle_options`` re-letters GPQA options from (problem id, sample index, seed).

Options (``grader.OPTION_DEFAULTS``): ``require_think`` (no ``</think>`` -> truncated),
``gold_format`` (auto | int | latex), ``math_fallbacks``, ``timeout`` (s per math pair),
``science_mode`` (strict | lenient), math-verify's ``float_rounding``/``numeric_precision``/
``strict``, and ``limits`` (sandbox ``Limits`` or a dict of its fields).
"""

from branchmerge.verify.grader import Verdict, close_pools, grade, grade_rows
from branchmerge.verify.science import shuffle_options

__all__ = ["Verdict", "close_pools", "grade", "grade_rows", "shuffle_options"]
