"""The demo's toy world: small generated problem sets for math, code and science, and a built-in
teacher that writes R1-style ``<think>`` traces and is wrong on a known share of samples.

Everything is generated from a seed, so the demo needs no download. Gold answers are computed, not
typed: math golds with sympy, code tests by running the reference function, science letters from
the option order. The teacher knows each problem's worked solution (kept in ``meta["teacher"]``, a
stand-in for a real teacher's knowledge) and, for a deterministic ``error_rate`` share of samples,
writes a plausible wrong one so that verification has something to reject.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection, Sequence
from typing import Any

from branchmerge.engines.base import Completion, Delivered, OnComplete, Request, SamplingParams, pending
from branchmerge.errors import UserError

MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


# -- math ------------------------------------------------------------------------------------------
def _math_problem(rng: random.Random) -> tuple[str, list[str], str, str]:
    """(question, reasoning steps, gold answer in LaTeX, a wrong answer)."""
    import sympy

    kind = rng.choice(["sum", "product", "linear", "fraction", "word"])
    a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(2, 9)
    if kind == "sum":
        value = sympy.Integer(a + b * c)
        return (f"Compute {a} + {b} \\times {c}.", [f"{b} times {c} is {b * c}.", f"{a} plus {b * c} is {value}."],
                sympy.latex(value), str(value + 1))
    if kind == "product":
        value = sympy.Integer((a + b) * c)
        return (f"Compute ({a} + {b}) \\times {c}.", [f"{a} + {b} = {a + b}.", f"{a + b} times {c} is {value}."],
                sympy.latex(value), str(value - c))
    if kind == "linear":
        x = sympy.Symbol("x")
        rhs = c * a + b
        (value,) = sympy.solve(sympy.Eq(c * x + b, rhs), x)
        return (f"Solve for $x$: ${c}x + {b} = {rhs}$.",
                [f"Subtract {b}: {c}x = {rhs - b}.", f"Divide by {c}: x = {value}."],
                sympy.latex(value), str(value + 2))
    if kind == "fraction":
        value = sympy.Rational(1, a) + sympy.Rational(1, b)
        return (f"What is $\\frac{{1}}{{{a}}} + \\frac{{1}}{{{b}}}$? Express your answer as a common fraction.",
                [f"The common denominator is {a * b}.", f"{b}/{a * b} + {a}/{a * b} = {value}."],
                sympy.latex(value), f"\\frac{{2}}{{{a + b}}}")
    value = sympy.Integer(a * c - b) if a * c > b else sympy.Integer(a * c + b)
    op = "gives away" if a * c > b else "finds"
    return (f"Mia has {c} boxes with {a} pencils each. She {op} {b} pencils. How many pencils does she have now?",
            [f"{c} boxes of {a} is {a * c} pencils.", f"After that she has {value}."], sympy.latex(value), str(a * c))


# -- code ------------------------------------------------------------------------------------------
# (statement with {k}, correct solution, buggy solution, input maker). Solutions read stdin, print stdout.
CODE_TASKS: list[tuple[str, str, str, Callable[[random.Random], str]]] = [
    (
        "Read an integer n and then n integers. Print their sum multiplied by {k}.",
        "n, *xs = map(int, open(0).read().split())\nprint(sum(xs[:n]) * {k})\n",
        "n, *xs = map(int, open(0).read().split())\nprint(sum(xs[:n - 1]) * {k})\n",
        lambda r: _list_input(r),
    ),
    (
        "Read an integer n and then n integers. Print how many of them are divisible by {k}.",
        "n, *xs = map(int, open(0).read().split())\nprint(sum(1 for x in xs[:n] if x % {k} == 0))\n",
        "n, *xs = map(int, open(0).read().split())\nprint(sum(1 for x in xs[:n] if x % {k} == 1))\n",
        lambda r: _list_input(r),
    ),
    (
        "Read a line of text. Print it reversed, then a space, then its length plus {k}.",
        "s = input().strip()\nprint(s[::-1], len(s) + {k})\n",
        "s = input().strip()\nprint(s, len(s) + {k})\n",
        lambda r: "".join(r.choice("abcdefgh") for _ in range(r.randint(1, 12))) + "\n",
    ),
    (
        "Read two integers a and b. Print the largest integer x with a <= x <= b that is divisible by {k}, "
        "or -1 if there is none.",
        "a, b = map(int, input().split())\nxs = [x for x in range(a, b + 1) if x % {k} == 0]\n"
        "print(xs[-1] if xs else -1)\n",
        "a, b = map(int, input().split())\nxs = [x for x in range(a, b) if x % {k} == 0]\n"
        "print(xs[-1] if xs else -1)\n",
        lambda r: (lambda a: f"{a} {a + r.randint(0, 30)}\n")(r.randint(-20, 50)),
    ),
    (
        "Read an integer n. Print the sum of i**{k} for i from 1 to n.",
        "n = int(input())\nprint(sum(i ** {k} for i in range(1, n + 1)))\n",
        "n = int(input())\nprint(sum(i ** {k} for i in range(n)))\n",
        lambda r: f"{r.randint(1, 40)}\n",
    ),
]


def _list_input(r: random.Random) -> str:
    xs = [r.randint(-50, 50) for _ in range(r.randint(1, 8))]
    return f"{len(xs)}\n{' '.join(map(str, xs))}\n"


def run_reference(source: str, stdin: str) -> str:
    """Run one of our own reference solutions in-process to compute expected output (trusted code)."""
    import contextlib
    import io
    import sys

    out = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    scope: dict[str, Any] = {"__name__": "__main__", "open": lambda *_a, **_k: io.StringIO(stdin)}
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<reference>", "exec"), scope)
    finally:
        sys.stdin = old_stdin
    return out.getvalue()


# -- science ---------------------------------------------------------------------------------------
ELEMENTS = [("hydrogen", "H"), ("helium", "He"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
            ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("sulfur", "S"),
            ("chlorine", "Cl"), ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"), ("copper", "Cu"),
            ("zinc", "Zn"), ("silver", "Ag"), ("gold", "Au"), ("lead", "Pb"), ("tin", "Sn")]
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("kilograms", "grams", 1000),
         ("hours", "minutes", 60), ("minutes", "seconds", 60), ("litres", "millilitres", 1000)]


def _science_problem(rng: random.Random) -> tuple[str, list[str], str, list[str]]:
    """(question, reasoning steps, correct option, three distractors)."""
    if rng.random() < 0.5:
        name, symbol = rng.choice(ELEMENTS)
        others = rng.sample([s for _, s in ELEMENTS if s != symbol], 3)
        return (f"What is the chemical symbol of {name}?", [f"{name.capitalize()} is written {symbol}."],
                symbol, others)
    big, small, factor = rng.choice(UNITS)
    amount = rng.randint(2, 40)
    value = amount * factor
    distractors = [str(value // 10), str(value * 10), str(value + factor)]
    return (f"How many {small} are there in {amount} {big}?",
            [f"One of the {big} is {factor} {small}.", f"{amount} x {factor} = {value}."], str(value), distractors)


# -- problem sets ----------------------------------------------------------------------------------
def make_problems(domain: str, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
    """``n`` distinct problem rows of ``domain``; ``split`` keeps train and held-out sets disjoint."""
    rng = random.Random(f"{domain}-{split}-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n and attempts < n * 50:
        attempts += 1
        row = _make_one(domain, rng)
        if row["prompt"] in seen:
            continue
        seen.add(row["prompt"])
        row["id"] = f"toy-{domain}-{split}-{len(rows):04d}"
        row["source"] = f"toy-{domain}"
        rows.append(row)
    return rows


def _make_one(domain: str, rng: random.Random) -> dict[str, Any]:
    if domain == "math":
        question, steps, gold, wrong = _math_problem(rng)
        return {"domain": "math", "prompt": f"{question} {MATH_SUFFIX}", "reference": gold,
                "meta": {"teacher": {"steps": steps, "answer": gold, "wrong": wrong}}}
    if domain == "code":
        statement, good, bad, make_input = rng.choice(CODE_TASKS)
        k = rng.randint(2, 19)
        good, bad = good.format(k=k), bad.format(k=k)
        inputs = [make_input(rng) for _ in range(6)]
        tests = {"inputs": inputs, "outputs": [run_reference(good, i) for i in inputs]}
        prompt = (f"{statement.format(k=k)}\n\nRead the inputs from stdin, solve the problem and write the "
                  "answer to stdout. Enclose your code within ```python delimiters.")
        return {"domain": "code", "prompt": prompt, "reference": tests,
                "meta": {"teacher": {"steps": ["Parse the input.", "Compute the result and print it."],
                                     "answer": good, "wrong": bad}}}
    question, steps, correct, distractors = _science_problem(rng)
    options = [correct, *distractors]
    rng.shuffle(options)
    letters = "ABCD"
    answer = letters[options.index(correct)]
    wrong = rng.choice([x for x in letters if x != answer])
    prompt = (question + "\n" + "\n".join(f"{x}) {o}" for x, o in zip(letters, options))
              + "\n\nAnswer with the letter of the correct option in \\boxed{}.")
    return {"domain": "science", "prompt": prompt,
            "reference": {"answer": answer, "options": dict(zip(letters, options))},
            "meta": {"teacher": {"steps": steps, "answer": answer, "wrong": wrong}}}


# -- the teacher -----------------------------------------------------------------------------------
class ToyTeacher:
    """An engine that answers toy problems in DeepSeek-R1's format, wrong on ``error_rate`` of samples.

    It answers from the worked solutions of the problem rows it is given (its "knowledge"); which
    samples are wrong depends only on (problem id, sample index, seed), so the share is known and a
    rerun writes the same data.
    """

    name = "toy"

    def __init__(self, problems: Sequence[dict[str, Any]], model: str = "toy-teacher",
                 error_rate: float = 0.25, seed: int = 0) -> None:
        self.model = model
        self.error_rate = error_rate
        self.seed = seed
        self.knowledge = {p["id"]: p for p in problems}

    @classmethod
    def from_files(cls, problems: str | Sequence[str], model: str = "toy-teacher", **options: Any) -> ToyTeacher:
        """The teacher as an engine preset builds it: ``problems`` names JSONL files of problem rows."""
        from branchmerge.records import read_jsonl

        paths = [problems] if isinstance(problems, str) else list(problems)
        return cls([row for path in paths for row in read_jsonl(path, "problem")], model=model, **options)

    def info(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model, "error_rate": self.error_rate, "seed": self.seed}

    def is_wrong(self, problem_id: str, sample_idx: int) -> bool:
        digest = hashlib.sha256(f"{problem_id}|{sample_idx}|{self.seed}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.error_rate

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_complete: OnComplete | None = None,
        skip: Collection[tuple[str, int]] = (),
    ) -> list[Completion]:
        results = Delivered(on_complete)
        unknown = [r.id for r in requests if r.id not in self.knowledge]
        if unknown:
            raise UserError(f"the toy teacher only knows its own problems; unknown id(s): {', '.join(unknown[:5])}")
        for request, s in pending(requests, params, skip):
            problem = self.knowledge[request.id]
            text = self._write(problem, self.is_wrong(request.id, s))
            results.add(Completion.build(request.id, s, text, "stop", len(problem["prompt"].split()),
                                         len(text.split()), model=self.model))
        return results

    @staticmethod
    def trace(problem: dict[str, Any], wrong: bool = False) -> tuple[str, str]:
        """(reasoning, answer) for a problem, with the worked or the deliberately wrong solution."""
        worked = problem["meta"]["teacher"]
        answer = worked["wrong"] if wrong else worked["answer"]
        if problem["domain"] == "code":
            final = f"Here is the program.\n\n```python\n{answer}```"
        else:
            final = f"The answer is \\boxed{{{answer}}}."
        return "\n".join(worked["steps"]), final

    def _write(self, problem: dict[str, Any], wrong: bool) -> str:
        reasoning, answer = self.trace(problem, wrong)
        return f"{reasoning}\n</think>\n\n{answer}"
