"""Adapters: raw source rows -> problem rows (plus stored teacher texts for replay).

Each known schema is recognised from its columns, whatever the source is (Hub id or local file):
OpenR1-Math-220k, OpenThoughts-114k (default and ``metadata`` configs), TACO/APPS/Codeforces-style
code with tests, multiple-choice science, NuminaMath-style math, and branchmerge's own problem rows
(``records.py``); anything else needs ``--map``.
An adapter never raises on a bad row: it returns an ``Item`` with ``reject`` set, so the row is
counted and written to ``rejected/`` with its reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from branchmerge.curate.sources import MALFORMED
from branchmerge.errors import UserError
from branchmerge.records import validate

MATH_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
CODE_STDIN = (
    "{problem}\n\nWrite a Python 3 program that reads the input from standard input and writes the answer to "
    "standard output. Give the complete program in one ```python code block at the end of your answer."
)
CODE_CALL = (
    "{problem}\n\nComplete the following starter code in Python 3 and give the whole solution in one "
    "```python code block at the end of your answer.\n```python\n{starter_code}\n```"
)
MC_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of {letters}. Think step by "
    "step before answering.\n\n{problem}\n\n{options}"
)
OPEN_SCIENCE_TEMPLATE = "{problem}"
# OpenThoughts' own answer markup, rewritten to R1's <think> layout.
OT_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.S)
OT_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.S)
SCIENCE_DOMAINS = {"biology", "chemistry", "physics", "science", "health", "medicine"}
MAP_KEYS = ("prompt", "answer", "id", "options", "tests", "fn_name", "starter_code", "completion", "reasoning",
            "finish_reason")


@dataclass
class Item:
    """One source row after adaptation."""

    index: int
    problem: dict[str, Any] | None = None
    replays: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    source_verdicts: list[bool | None] = field(default_factory=list)  # the source's own correctness labels
    reject: str | None = None  # "malformed" | "other_domain" | "where"
    detail: str = ""


class RowError(ValueError):
    """A malformed source row; becomes a rejected row, never a crash."""


@dataclass
class AdapterContext:
    domain: str
    source: str
    template: str | None
    mapping: dict[str, str]
    has_domain_column: bool = True

    def prompt(self, default: str, **fields: str) -> str:
        """Fill ``{name}`` placeholders in one pass (LaTeX braces and braces inside the values stay as they are)."""
        template = self.template or default
        return re.sub(r"\{(" + "|".join(fields) + r")\}", lambda m: fields[m.group(1)], template)


# -- helpers ------------------------------------------------------------------------------------
def _text(row: dict[str, Any], column: str, required: bool = True) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(f"column {column!r} is empty or missing")
        return ""
    if not isinstance(value, str):
        raise RowError(f"column {column!r} holds {type(value).__name__}, expected text")
    return value.strip()


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces), for sources with a solution only."""
    start = text.rfind("\\boxed")
    while start >= 0:
        i = text.find("{", start)
        if i >= 0:
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j].strip()
        start = text.rfind("\\boxed", 0, start)
    return None


def _as_json(value: Any, column: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"column {column!r} is not valid JSON ({exc.msg})") from None
    return value


def code_tests(value: Any, column: str, fn_name: str | None = None) -> dict[str, Any]:
    """APPS/TACO ``input_output`` or a list of ``{input, output}`` -> ``{"inputs","outputs","fn_name"?}``."""
    tests = _as_json(value, column)
    if isinstance(tests, list):
        try:
            tests = {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests]}
        except (TypeError, KeyError):
            raise RowError(f"column {column!r}: expected a list of {{input, output}} objects") from None
    if isinstance(tests, dict) and "inputs" not in tests and isinstance(tests.get("input"), list):
        tests = {**tests, "inputs": tests["input"], "outputs": tests.get("output")}  # CodeContests layout
    if not isinstance(tests, dict) or not isinstance(tests.get("inputs"), list) or not isinstance(
        tests.get("outputs"), list
    ):
        raise RowError(f"column {column!r}: expected {{'inputs': [...], 'outputs': [...]}}")
    if not tests["inputs"] or len(tests["inputs"]) != len(tests["outputs"]):
        raise RowError(f"column {column!r}: no tests, or inputs and outputs differ in number")
    out = {"inputs": tests["inputs"], "outputs": tests["outputs"]}
    if tests.get("fn_name") or fn_name:
        out["fn_name"] = tests.get("fn_name") or fn_name
    return out


def mc_reference(options: Any, answer: Any) -> dict[str, Any]:
    """Options (list or letter->text dict) and an answer (letter, 0-based index or option text)."""
    options = _as_json(options, "options")
    if isinstance(options, list):
        options = {chr(65 + i): str(o) for i, o in enumerate(options)}
    if not isinstance(options, dict) or len(options) < 2:
        raise RowError("multiple-choice row needs at least two options")
    options = {str(k).strip().upper(): str(v) for k, v in options.items()}
    if isinstance(answer, bool) or answer is None:
        raise RowError("multiple-choice row has no answer")
    if isinstance(answer, int):
        letter = chr(65 + answer)
    else:
        text = str(answer).strip()
        letter = text.upper().strip("() .")
        if letter not in options:
            matches = [k for k, v in options.items() if v.strip() == text]
            letter = matches[0] if len(matches) == 1 else ""
    if letter not in options:
        raise RowError(f"answer {answer!r} is not one of the options {', '.join(options)}")
    return {"answer": letter, "options": options}


def mc_prompt(ctx: AdapterContext, problem: str, reference: dict[str, Any]) -> str:
    lines = "\n".join(f"{k}) {v}" for k, v in reference["options"].items())
    letters = "".join(reference["options"])
    return ctx.prompt(MC_TEMPLATE, problem=problem, options=lines, letters=letters)


def code_prompt(ctx: AdapterContext, problem: str, reference: dict[str, Any] | None, starter: str) -> str:
    if starter or (reference and reference.get("fn_name")):
        return ctx.prompt(CODE_CALL, problem=problem, starter_code=starter or f"def {reference['fn_name']}():")
    return ctx.prompt(CODE_STDIN, problem=problem)


def _problem(ctx: AdapterContext, index: int, prompt: str, reference: Any, meta: dict[str, Any]) -> dict[str, Any]:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ctx.source.rstrip("/").split("/")[-1]).strip("-").lower() or "src"
    row = {"id": f"{slug}-{index:07d}", "domain": ctx.domain, "source": ctx.source, "prompt": prompt,
           "reference": reference, "meta": {k: v for k, v in meta.items() if v not in (None, "")}}
    return validate(row, "problem")


def _stable_shuffle(items: list[str], key: str) -> list[str]:
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
    out = list(items)
    rng.shuffle(out)
    return out


# -- the adapters -------------------------------------------------------------------------------
def _openr1(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    problem, answer = _text(row, "problem"), _text(row, "answer")
    gens = row.get("generations") or []
    if not isinstance(gens, list) or not all(isinstance(g, str) for g in gens):
        raise RowError("column 'generations' must be a list of texts")
    finish = [str(f) if f else "stop" for f in (row.get("finish_reasons") or [])]
    labels = list(row.get("correctness_math_verify") or [])
    meta = {"source_id": row.get("uuid"), "problem_type": row.get("problem_type"),
            "question_type": row.get("question_type"), "origin": row.get("source")}
    return Item(index, _problem(ctx, index, ctx.prompt(MATH_TEMPLATE, problem=problem), answer, meta),
                gens, finish, labels)


def _ot_split(text: str) -> str:
    thought, solution = OT_THOUGHT.search(text), OT_SOLUTION.search(text)
    if thought is None:
        return text
    answer = solution.group(1).strip() if solution else ""
    return f"<think>\n{thought.group(1).strip()}\n</think>\n\n{answer}"


def _ot_domain_ok(ctx: AdapterContext, value: Any) -> bool:
    if not ctx.has_domain_column:
        return True
    value = str(value or "").lower()
    return value in SCIENCE_DOMAINS if ctx.domain == "science" else value == ctx.domain


def _openthoughts(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    if not _ot_domain_ok(ctx, row.get("domain")):
        return Item(index, reject="other_domain", detail=f"domain {row.get('domain')!r}")
    meta = {"origin": row.get("source"), "subdomain": row.get("domain")}
    if "conversations" in row:
        turns = row.get("conversations") or []
        users = [t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") in ("user", "human")]
        bots = [t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") in ("assistant", "gpt")]
        if not users or not users[0].strip():
            raise RowError("column 'conversations' has no user turn")
        problem, replays = users[0].strip(), [_ot_split(b) for b in bots[:1] if b.strip()]
        reference = None
        starter = ""
    else:
        problem = _text(row, "problem")
        reasoning, solution = _text(row, "deepseek_reasoning", False), _text(row, "deepseek_solution", False)
        replays = [f"<think>\n{reasoning}\n</think>\n\n{solution}"] if reasoning or solution else []
        starter = _text(row, "starter_code", False)
        reference = None
        if ctx.domain == "code" and row.get("test_cases"):
            reference = code_tests(row["test_cases"], "test_cases")
    if ctx.domain == "code":
        prompt = code_prompt(ctx, problem, reference, starter) if "conversations" not in row else problem
    else:
        prompt = ctx.prompt(MATH_TEMPLATE if ctx.domain == "math" else OPEN_SCIENCE_TEMPLATE, problem=problem)
    if ctx.domain == "math" and row.get("ground_truth_solution"):
        reference = last_boxed(str(row["ground_truth_solution"]))
    return Item(index, _problem(ctx, index, prompt, reference, meta), replays, ["stop"] * len(replays))


def _code_io(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    column = next(c for c in ("input_output", "official_tests", "test_cases", "tests") if c in row)
    problem = _text(row, next(c for c in ("question", "description", "problem", "prompt") if c in row))
    reference = code_tests(row.get(column), column, row.get("fn_name"))
    starter = _text(row, "starter_code", False)
    meta = {"source_id": row.get("id") or row.get("problem_id"), "difficulty": row.get("difficulty")}
    return Item(index, _problem(ctx, index, code_prompt(ctx, problem, reference, starter), reference, meta))


def _mc(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    if "Correct Answer" in row:  # GPQA layout: one correct and three incorrect answer columns
        problem = _text(row, "Question")
        right = _text(row, "Correct Answer")
        wrong = [_text(row, f"Incorrect Answer {i}") for i in (1, 2, 3)]
        order = _stable_shuffle([right, *wrong], f"{ctx.source}:{index}")
        reference = mc_reference(order, order.index(right))
    else:
        problem = _text(row, "question")
        options = row.get("options", row.get("choices"))
        if isinstance(options, dict) and "text" in options and "label" in options:  # ARC/OpenBookQA layout
            options = dict(zip(options["label"], options["text"], strict=False))
        answer = row.get("answer", row.get("answerKey", row.get("label")))
        reference = mc_reference(options, answer)
    meta = {"source_id": row.get("id") or row.get("Record ID"), "subject": row.get("subject")}
    return Item(index, _problem(ctx, index, mc_prompt(ctx, problem, reference), reference, meta))


def _numina(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    problem = _text(row, "problem")
    answer = _text(row, "answer", False) or last_boxed(_text(row, "solution", False)) or ""
    if not answer or answer.lower() in ("proof", "notfound", "none"):
        raise RowError("no gold answer (answer column empty and no \\boxed{} in the solution)")
    meta = {"source_id": row.get("uuid") or row.get("id"), "problem_type": row.get("problem_type"),
            "question_type": row.get("question_type"), "origin": row.get("source")}
    return Item(index, _problem(ctx, index, ctx.prompt(MATH_TEMPLATE, problem=problem), answer, meta))


def _mapped(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    m = ctx.mapping
    problem = _text(row, m["prompt"])
    reference: Any = None
    if ctx.domain == "math":
        if "answer" in m:
            reference = _text(row, m["answer"], False) or last_boxed(str(row.get(m["answer"]) or "")) or None
        prompt = ctx.prompt(MATH_TEMPLATE, problem=problem)
    elif ctx.domain == "code":
        if "tests" in m:
            reference = code_tests(row.get(m["tests"]), m["tests"], row.get(m["fn_name"]) if "fn_name" in m else None)
        starter = _text(row, m["starter_code"], False) if "starter_code" in m else ""
        prompt = code_prompt(ctx, problem, reference, starter)
    elif "options" in m:
        reference = mc_reference(row.get(m["options"]), row.get(m.get("answer", "answer")))
        prompt = mc_prompt(ctx, problem, reference)
    else:
        reference = _text(row, m["answer"], False) or None if "answer" in m else None
        prompt = ctx.prompt(OPEN_SCIENCE_TEMPLATE, problem=problem)
    replays: list[str] = []
    if "completion" in m:
        value = row.get(m["completion"])
        texts = value if isinstance(value, list) else [value] if value else []
        if "reasoning" in m:
            thoughts = row.get(m["reasoning"])
            thoughts = thoughts if isinstance(thoughts, list) else [thoughts] * len(texts)
            texts = [f"<think>\n{r}\n</think>\n\n{t}" for r, t in zip(thoughts, texts, strict=False)]
        replays = [str(t) for t in texts]
    finish = row.get(m["finish_reason"]) if "finish_reason" in m else None
    finish_list = finish if isinstance(finish, list) else [finish or "stop"] * len(replays)
    meta = {"source_id": row.get(m["id"]) if "id" in m else None}
    return Item(index, _problem(ctx, index, prompt, reference, meta), replays, [str(f) for f in finish_list])


def _problem_rows(row: dict[str, Any], ctx: AdapterContext, index: int) -> Item:
    """branchmerge's own problem rows (records.py schema): prompts are already complete, ids kept."""
    if row.get("domain") != ctx.domain:
        return Item(index, reject="other_domain", detail=f"domain {row.get('domain')!r}, not {ctx.domain}")
    problem = validate(dict(row), "problem")
    if ctx.template:
        problem["prompt"] = ctx.prompt(ctx.template, problem=problem["prompt"])
    return Item(index, problem)


ADAPTERS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any], AdapterContext, int], Item]]] = {
    "problem-rows": (("math", "code", "science"), _problem_rows),
    "openr1-math": (("math",), _openr1),
    "openthoughts": (("math", "code", "science"), _openthoughts),
    "code-tests": (("code",), _code_io),
    "multiple-choice": (("science",), _mc),
    "numina": (("math",), _numina),
    "map": (("math", "code", "science"), _mapped),
}


def recognise(columns: list[str]) -> str | None:
    """The adapter for a set of columns, or None."""
    cols = set(columns)
    if {"id", "domain", "prompt", "reference"} <= cols:
        return "problem-rows"
    if {"problem", "generations", "answer"} <= cols:
        return "openr1-math"
    if "conversations" in cols or {"problem", "deepseek_reasoning", "deepseek_solution"} <= cols:
        return "openthoughts"
    if cols & {"input_output", "official_tests", "test_cases"} and cols & {"question", "description", "problem"}:
        return "code-tests"
    if {"Question", "Correct Answer", "Incorrect Answer 1"} <= cols or (
        "question" in cols and cols & {"options", "choices"} and cols & {"answer", "answerKey", "label"}
    ):
        return "multiple-choice"
    if "problem" in cols and cols & {"answer", "solution"}:
        return "numina"
    return None


def choose_adapter(columns: list[str], domain: str, source: str, forced: str | None,
                   mapping: dict[str, str]) -> str:
    if mapping:
        bad = sorted(set(mapping) - set(MAP_KEYS))
        if bad:
            raise UserError(f"--map keys {', '.join(bad)} unknown; valid keys: {', '.join(MAP_KEYS)}")
        if "prompt" not in mapping:
            raise UserError("--map needs prompt=<column> (the column that holds the problem text)")
        missing = [c for c in mapping.values() if columns and c not in columns]
        if missing:
            raise UserError(f"--map names column(s) {', '.join(missing)} that {source} lacks; "
                            f"columns found: {', '.join(columns)}")
        name = "map"
    elif forced:
        if forced not in ADAPTERS:
            raise UserError(f"unknown schema {forced!r}; valid: {', '.join(ADAPTERS)}")
        name = forced
    else:
        found = recognise(columns)
        if found is None:
            raise UserError(
                f"cannot recognise the schema of {source}; columns found: {', '.join(columns) or '(none)'}. "
                "Known: OpenR1-Math-220k, OpenThoughts-114k, TACO/APPS/Codeforces code with tests, "
                "multiple-choice science, NuminaMath-style math, branchmerge problem rows (id, domain, prompt, "
                "reference). Map the columns yourself, e.g. "
                "--map prompt=question,answer=solution"
            )
        name = found
    if domain not in ADAPTERS[name][0]:
        raise UserError(f"{source} looks like {name} data, which is for {'/'.join(ADAPTERS[name][0])}, "
                        f"not {domain}; use --map to say which columns to use")
    return name


def adapt(name: str, raw: dict[str, Any], index: int, ctx: AdapterContext,
          where: dict[str, list[Any]]) -> Item:
    """One raw row -> ``Item``; every failure is a rejected item with its reason."""
    if MALFORMED in raw:
        return Item(index, reject="malformed", detail=str(raw[MALFORMED]))
    for column, allowed in where.items():
        if raw.get(column) not in allowed:
            return Item(index, reject="where", detail=f"{column}={raw.get(column)!r} not in {allowed}")
    try:
        return ADAPTERS[name][1](raw, ctx, index)
    except (RowError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return Item(index, reject="malformed", detail=f"{type(exc).__name__}: {exc}" if not isinstance(
            exc, RowError) else str(exc))
