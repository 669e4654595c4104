"""One grader for curation and evaluation: completion + reference -> verdict with its reasons.

Grading runs in two steps so a batch stays cheap. ``_prepare`` does the string work in the
calling process: cut the answer segment at the last ``</think>`` (no closing tag or
``finish_reason == "length"`` means ``truncated``), extract the answer, and settle whatever can
be settled without sympy or the sandbox (unparsed rows, fast paths, cached pairs). What is left
(math-verify checks, code runs) is then done in bulk: math in a deadline-enforcing process pool,
code through the sandbox.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from branchmerge.errors import UserError, choice_error
from branchmerge.reasoning import THINK_OPEN, split_reasoning
from branchmerge.records import DOMAINS
from branchmerge.verify import choice, code, extract, math_check, numbers, science


@dataclass
class Verdict:
    verdict: str  # one of records.VERDICTS
    detail: dict[str, Any] = field(default_factory=dict)  # extracted, gold, rule, ...


OPTION_DEFAULTS: dict[str, Any] = {
    "require_think": True,  # no </think> -> truncated; False: text without <think> is all answer
    # after_think: grade the text after the last </think>; anywhere: the whole output, closed or not,
    # truncated or not (the TinyR1 release's policy: its graders take the last answer anywhere)
    "answer_region": "after_think",
    "gold_format": "auto",  # math: auto | int (AIME) | latex (MATH-500)
    "math_fallbacks": extract.MATH_RULES,  # the extraction rules tried after the last \boxed{}
    "timeout": 5.0,  # seconds of wall clock per math pair
    "science_mode": "strict",  # which mode sets a multiple-choice verdict (both are stored)
    "float_rounding": 6,  # passed to math-verify
    "numeric_precision": 15,
    "strict": True,
    "limits": None,  # code: a sandbox Limits (or a dict of its fields)
}
_CHECK_OPTIONS = ("float_rounding", "numeric_precision", "strict")
ANSWER_REGIONS = ("after_think", "anywhere")
_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}
_CACHE_MAX = 200_000
_EARLY_POOL_ROWS = 64  # a batch this big starts the math workers before its string work
_POOLS: dict[tuple[int, float], Any] = {}
_POOLS_LOCK = threading.Lock()
# rules of a full check that decided (a verdict, cached); anything else is a time-out or a crash
_DECIDED = ("math_verify", "math_verify_values", "exact_rational_mismatch")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise UserError(f"unknown verify option(s) {', '.join(unknown)}; valid: {', '.join(OPTION_DEFAULTS)}")
    merged = {**OPTION_DEFAULTS, **options}
    if merged["answer_region"] not in ANSWER_REGIONS:
        raise choice_error("answer region", merged["answer_region"], ANSWER_REGIONS)
    if merged["science_mode"] not in science.MODES:
        raise choice_error("science mode", merged["science_mode"], science.MODES)
    if merged["gold_format"] not in math_check.GOLD_FORMATS:
        raise choice_error("gold format", merged["gold_format"], math_check.GOLD_FORMATS)
    unknown_fb = [f for f in merged["math_fallbacks"] if f not in extract.MATH_RULES]
    if unknown_fb:
        raise choice_error("math fallback", unknown_fb[0], extract.MATH_RULES)
    merged["math_fallbacks"] = tuple(merged["math_fallbacks"])
    return merged


@dataclass
class _MathJob:
    gold: str
    pred: str
    fmt: str
    check: dict[str, Any]
    detail: dict[str, Any]

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.gold, self.fmt, self.pred, tuple(sorted(self.check.items())))


@dataclass
class _CodeJob:
    code: str
    tests: dict[str, Any]
    detail: dict[str, Any]


Prepared = Verdict | _MathJob | _CodeJob


def answer_segment(completion: str, finish_reason: str, require_think: bool,
                   region: str = "after_think") -> tuple[str, Verdict | None]:
    """The text to grade, or the verdict that makes grading pointless (truncated, error)."""
    if finish_reason == "error":
        return "", Verdict("error", {"extracted": "", "rule": "generation_error"})
    if region == "anywhere":
        return completion.strip(), None
    if finish_reason == "length":
        return "", Verdict("truncated", {"extracted": "", "rule": "finish_length"})
    split = split_reasoning(completion)
    if split.closed:
        return split.answer, None
    if require_think or completion.lstrip().startswith(THINK_OPEN):
        return "", Verdict("truncated", {"extracted": "", "rule": "no_think_close"})
    return completion.strip(), None


def _gold_text(reference: Any) -> str | None:
    if isinstance(reference, dict):
        reference = reference.get("answer")
    if reference is None or isinstance(reference, (dict, list, bool)):
        return None
    return str(reference).strip() or None


def _prepare(domain: str, completion: Any, reference: Any, finish_reason: Any, opts: dict[str, Any]) -> Prepared:
    if domain not in DOMAINS:
        return Verdict("error", {"extracted": "", "gold": None, "rule": "bad_domain", "error": f"domain {domain!r}"})
    if not isinstance(completion, str):
        return Verdict("error", {"extracted": "", "gold": None, "rule": "no_completion"})
    if domain == "science" and isinstance(reference, str) and re.fullmatch(r"\s*[A-Z]\s*", reference):
        reference = {"answer": reference.strip()}  # a bare option letter
    if domain == "code" and isinstance(reference, str):
        try:  # tests stored as JSON text (as Parquet stores `reference`)
            reference = json.loads(reference)
        except ValueError:
            pass
    letter = choice.option_letter(_gold_text(reference) or "") if domain == "math" else None
    if letter:  # an AMC-style math answer "\text{(C)}": which option was chosen is the question
        reference = {"answer": letter, "letters": "".join(chr(c) for c in range(ord("A"), ord(max("E", letter)) + 1))}
    is_choice = letter is not None or (domain == "science" and science.is_choice(reference))
    segment, early = answer_segment(completion, finish_reason or "stop", opts["require_think"], opts["answer_region"])
    if early is not None:
        early.detail["gold"] = reference.get("answer") if isinstance(reference, dict) else reference
        if is_choice:
            early.detail.update(science.mode_detail(early.verdict, early.detail["rule"]))
        return early
    if domain == "code":
        return _prepare_code(segment, reference)
    if is_choice:
        verdict, detail = science.grade_choice(segment, reference, opts["science_mode"])
        return Verdict(verdict, detail)
    return _prepare_math(segment, reference, opts, quantities=domain == "science")


_PREP_MEMO: dict[tuple[Any, ...], Prepared] = {}


def _prepare_math(segment: str, reference: Any, opts: dict[str, Any], quantities: bool) -> Prepared:
    gold = _gold_text(reference)
    if gold is None:
        return Verdict("error", {"extracted": "", "gold": reference, "rule": "no_reference"})
    # n samples (and curation's repeated closing lines) often end in the same answer segment:
    # the string work below is a pure function of these, so it is done once per distinct key
    key = (segment, gold, quantities, opts["gold_format"], opts["math_fallbacks"], *(opts[k] for k in _CHECK_OPTIONS))
    done = _PREP_MEMO.get(key)
    if done is None:
        if len(_PREP_MEMO) >= _CACHE_MAX:
            _PREP_MEMO.clear()
        done = _PREP_MEMO[key] = _prepare_math_once(segment, gold, opts, quantities)
    if isinstance(done, Verdict):
        return Verdict(done.verdict, dict(done.detail))
    return _MathJob(done.gold, done.pred, done.fmt, done.check, dict(done.detail))


def _prepare_math_once(segment: str, gold: str, opts: dict[str, Any], quantities: bool) -> Prepared:
    gold = extract.reference_answer(gold)
    found = extract.math_answer(segment, opts["math_fallbacks"])
    detail: dict[str, Any] = {"extracted": found.text, "gold": gold, "extract_rule": found.rule}
    if not found.text:
        return Verdict("unparsed", {**detail, "rule": "no_answer"})
    pred, fmt = found.text, opts["gold_format"]
    gold_q, pred_q = (science.split_quantity(gold), science.split_quantity(pred)) if quantities else (None, None)
    if gold_q or pred_q:
        # "3.2 m/s": compare the numbers when the units agree or only one side has one; two
        # different units ("2mg" vs "2mgh" reads as 2 with units too) go to the full check whole
        units = (science.unit_key(gold_q[1]) if gold_q else "", science.unit_key(pred_q[1]) if pred_q else "")
        detail.update(unit_gold=units[0], unit_pred=units[1])
        if not all(units) or units[0] == units[1]:
            gold, pred = gold_q[0] if gold_q else gold, pred_q[0] if pred_q else pred
    gold, pred = numbers.align(extract.join_parts(gold), extract.join_parts(pred))
    if numbers.mixed_number(pred) == "invalid" and math_check.normalise(pred) != math_check.normalise(gold):
        # "11 6/6" is neither 11, 1 nor 12: a malformed answer equals only itself
        return Verdict("incorrect", {**detail, "rule": "invalid_mixed_number"})
    fast = math_check.fast_verdict(gold, pred, fmt)
    if fast is not None:
        return Verdict("correct" if fast[0] else "incorrect", {**detail, "rule": fast[1]})
    return _MathJob(gold, pred, fmt, {k: opts[k] for k in _CHECK_OPTIONS}, detail)


def _prepare_code(segment: str, reference: Any) -> Prepared:
    problem = code.check_tests(reference)
    if problem is not None:
        return Verdict("error", {"extracted": "", "gold": None, "rule": "bad_tests", "error": problem})
    found = extract.code_block(segment)
    detail = {"extracted": found.text, "gold": None, "extract_rule": found.rule}
    if not found.text.strip():
        return Verdict("unparsed", {**detail, "rule": "no_code_block"})
    return _CodeJob(found.text, reference, detail)


# ---- resolving the jobs -----------------------------------------------------------------------


def _math_result(job: _MathJob, result: dict[str, Any], cached: bool) -> Verdict:
    detail = {**job.detail, "rule": result["rule"]}
    for key in ("parsed_gold", "parsed_pred", "error", "tolerance"):
        if key in result:
            detail[key] = result[key]
    if cached:
        detail["cached"] = True
    if result["ok"]:
        return Verdict("correct", detail)
    if result["rule"] == "timeout":
        detail["timeout"] = True  # counted apart, scored incorrect (reference/evaluation.md §3 #11)
        return Verdict("incorrect", detail)
    if result["rule"] in _DECIDED:
        return Verdict("incorrect", detail)
    return Verdict("error", detail)


def _check_item(item: tuple[str, str, str, dict[str, Any]], timeout: float | None) -> dict[str, Any]:
    return math_check.timed_check(item, timeout)


# One pair per answer shape that makes sympy import or build something on first use (relations,
# intervals and sets, tuples, matrices, complex numbers, polynomials, units): paid while the worker
# starts, in parallel with the caller's string work, instead of inside the first real checks.
WARM_UP = (
    ("\\frac{1}{2}", "x+0.5"), ("y = 3x - 1", "y = 3x"), ("x \\in [0,5]", "[0,4]"),
    ("(-\\infty, -1) \\cup (4, \\infty)", "(-\\infty, 4)"), ("\\left( 2, \\frac{\\pi}{3} \\right)", "(2, \\pi/4)"),
    ("\\{2\\pm\\sqrt{3}, 5\\}", "\\{2, 5\\}"), ("\\begin{pmatrix} 3 \\\\ 4 \\end{pmatrix}", "\\begin{pmatrix} 3 \\\\ 5 \\end{pmatrix}"),
    ("2 + 3i", "2 - 3i"), ("x^2-4x+1", "x^2-4x"), ("45^\\circ", "\\pi/3"), ("\\text{north}", "\\text{south}"),
)


def warm_up() -> None:
    """Called once by each pool worker before its first item."""
    for gold, pred in WARM_UP:
        try:
            math_check.full_check(gold, pred, "latex")
        except Exception:  # a warm-up must never stop a worker  # noqa: BLE001
            pass


def _lost(item: Any, why: str) -> dict[str, Any]:
    if why == "timeout":
        return {"ok": False, "rule": "timeout", "error": "worker stopped answering; killed"}
    return {"ok": False, "rule": "check_error", "error": f"worker process ended ({why})"}


def _run_math(jobs: list[_MathJob], opts: dict[str, Any], workers: int, progress: bool) -> list[Verdict]:
    known = {job.key: _CACHE[job.key] for job in jobs if job.key in _CACHE}
    unique: dict[tuple[Any, ...], _MathJob] = {}
    for job in jobs:
        if job.key not in known:
            unique.setdefault(job.key, job)
    todo = sorted(unique.values(), key=lambda j: (-_parse_cost(j.gold), j.gold))
    items = [(j.gold, j.pred, j.fmt, j.check) for j in todo]
    if len(items) <= 2 and threading.current_thread() is threading.main_thread() or workers <= 0:
        results = [_check_item(item, opts["timeout"]) for item in items]
    else:
        # one chunk per gold (parsed once), the dearest first so the batch ends on cheap ones, and
        # a gold seen in an earlier batch back on the worker that has learned it
        chunks: dict[str, list[int]] = {}
        for i, job in enumerate(todo):
            chunks.setdefault(job.gold, []).append(i)
        with _Progress(progress, len(items)) as tick:
            results = _map_checks(items, opts["timeout"], workers, lambda i, r: tick(1), list(chunks.values()), list(chunks))
    if len(_CACHE) + len(results) > _CACHE_MAX:
        _CACHE.clear()
    for job, result in zip(todo, results):
        known[job.key] = result
        if result["rule"] in _DECIDED:  # not time-outs and crashes
            _CACHE[job.key] = result
    return [_math_result(job, known[job.key], cached=unique.get(job.key) is not job) for job in jobs]


_STRUCTURE = re.compile(r"[(\[,_^]|\\\{|\\begin|\\frac")


def _parse_cost(gold: str) -> int:
    """A guess at what math-verify's first parse of ``gold`` costs. Its LaTeX parser (ANTLR) looks
    ahead across a whole bracketed list or fraction before it decides, and learns each new token
    sequence the first time (20-300 ms): brackets, commas and fractions make a gold dear, its
    length a little."""
    return len(gold) + 40 * len(_STRUCTURE.findall(gold))


def _pool(workers: int, timeout: float) -> Any:
    """The kept-alive pool for (workers, timeout), started on first use. Starting it does not
    wait: its workers import math-verify while the caller goes on with string work."""
    from branchmerge.verify.pool import WorkerPool

    key = (workers, timeout)
    with _POOLS_LOCK:
        if key not in _POOLS:
            if not _POOLS:
                atexit.register(close_pools)
            _POOLS[key] = WorkerPool("branchmerge.verify.grader:_check_item", workers, timeout)
        return _POOLS[key]


def _map_checks(
    items: list[Any], timeout: float, workers: int, on_result: Callable[[int, Any], None], chunks: list[list[int]],
    keys: list[str],
) -> list[Any]:
    """Math checks on a kept-alive pool (one per (workers, timeout)); a second thread that finds
    it busy gets a pool of its own for that batch."""
    from branchmerge.verify.pool import WorkerPool

    pool = _pool(workers, timeout)
    if pool.lock.acquire(blocking=False):
        try:
            return pool.map(items, _lost, on_result, chunks, keys)
        finally:
            pool.lock.release()
    spare = WorkerPool(pool.fn, workers, timeout)
    try:
        return spare.map(items, _lost, on_result, chunks, keys)
    finally:
        spare.close()


def close_pools() -> None:
    """Stop the kept-alive grading workers (also run at exit)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            with pool.lock:
                pool.close()
        _POOLS.clear()


def _run_code(jobs: list[_CodeJob], opts: dict[str, Any], workers: int) -> list[Verdict]:
    results = code.run_code([(job.code, job.tests) for job in jobs], opts["limits"], workers)
    return [
        Verdict(code.verdict_of(r["verdict"]), {**job.detail, "rule": r["verdict"], "sandbox": r})
        for job, r in zip(jobs, results)
    ]


# ---- public API -------------------------------------------------------------------------------


def grade(domain: str, completion: str, reference: Any, finish_reason: str = "stop", **options: Any) -> Verdict:
    """Grade one completion. Math checks run in this process under a timer on the main thread,
    and in a one-worker pool elsewhere (signals only work on the main thread)."""
    row = {"domain": domain, "completion": completion, "reference": reference, "finish_reason": finish_reason}
    graded = grade_rows([row], domain, workers=1, **options)[0]
    return Verdict(graded["verdict"], graded["verdict_detail"])


def grade_rows(
    rows: list[dict[str, Any]],
    domain: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Copies of generation ``rows`` with ``verdict`` and ``verdict_detail`` set, order kept.

    ``domain`` overrides each row's ``domain``; ``workers`` defaults to the usable CPUs.
    """
    if domain is not None and domain not in DOMAINS:
        raise choice_error("domain", domain, DOMAINS)
    opts = _options(options)
    workers = workers if workers is not None else len(os.sched_getaffinity(0))
    if workers > 0 and len(rows) >= _EARLY_POOL_ROWS and (domain or rows[0].get("domain")) in ("math", "science"):
        _pool(workers, opts["timeout"])  # a big batch: workers start while the rows are prepared
    prepared = [
        _prepare(domain or row.get("domain"), row.get("completion"), row.get("reference"), row.get("finish_reason"), opts)
        for row in rows
    ]
    math_idx = [i for i, p in enumerate(prepared) if isinstance(p, _MathJob)]
    code_idx = [i for i, p in enumerate(prepared) if isinstance(p, _CodeJob)]
    for i, verdict in zip(math_idx, _run_math([prepared[i] for i in math_idx], opts, workers, progress)):
        prepared[i] = verdict
    if code_idx:
        for i, verdict in zip(code_idx, _run_code([prepared[i] for i in code_idx], opts, workers)):
            prepared[i] = verdict
    return [{**row, "verdict": v.verdict, "verdict_detail": v.detail} for row, v in zip(rows, prepared)]


class _Progress:
    """A progress bar over the pooled checks, only when asked (a caller may have its own display)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled and total > 0, total
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from branchmerge.console import progress

        self._bar = progress()
        self._bar.start()
        task = self._bar.add_task("verify (math-verify checks)", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
