"""Small local sources and a teacher responder for the curation tests."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

REPEAT_LINE = "Let me recompute the sum of the two numbers once more."


def write_jsonl(path: Path, rows: list[dict[str, Any]], extra_lines: tuple[str, ...] = ()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


def math_problem(i: int) -> str:
    """Distinct enough that no two are near-duplicates (different words, not just numbers)."""
    things = ["apples", "marbles", "coins", "stamps", "pencils", "shells", "cards", "books", "seeds", "beads"]
    people = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
    verbs = ["collects", "buys", "finds", "receives", "wins", "borrows"]
    return (f"Problem {i}: {people[i % 12]} {verbs[i % 6]} {i + 2} {things[i % 10]} on {['Monday', 'Friday', 'Sunday'][i % 3]} "
            f"and then {i * 3 + 1} more {things[(i + 3) % 10]} in week {i // 12 + 1}. How many items in total?")


def math_answer(i: int) -> int:
    return (i + 2) + (i * 3 + 1)


def openr1_rows(n: int) -> list[dict[str, Any]]:
    """OpenR1-Math-220k-style rows: two generations each, the second wrong for every third problem."""
    rows = []
    for i in range(n):
        a = math_answer(i)
        good = f"<think>\nAdd {i + 2} and {i * 3 + 1} to get {a}.\n</think>\n\nThe total is $\\boxed{{{a}}}$."
        other = good if i % 3 else good.replace(f"\\boxed{{{a}}}", f"\\boxed{{{a + 1}}}")
        rows.append({
            "problem": math_problem(i), "solution": f"... \\boxed{{{a}}}", "answer": str(a),
            "problem_type": "Algebra", "question_type": "proof" if i == 5 else "math-word-problem",
            "source": "olympiads", "uuid": f"uuid-{i}", "is_reasoning_complete": [True, True],
            "generations": [good, other], "correctness_math_verify": [True, i % 3 != 0],
            "correctness_llama": None, "finish_reasons": ["stop", "stop"], "correctness_count": 1,
            "messages": [],
        })
    return rows


def teacher_responder(delay: float = 0.0):
    """R1-style answers keyed on the problem number: correct, wrong, looping or truncated."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        prompt = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        i = int(re.search(r"Problem (\d+):", prompt).group(1))
        if delay:
            time.sleep(delay)
        a = math_answer(i)
        kind = i % 6
        reasoning = f"We add the two counts: {i + 2} + {i * 3 + 1} = {a}."
        content, finish = f"The total is $\\boxed{{{a}}}$.", "stop"
        if kind == 3:
            content = f"The total is $\\boxed{{{a + 7}}}$."
        elif kind == 4:
            reasoning = "\n".join([REPEAT_LINE] * 40)
        elif kind == 5:
            content, finish = "", "length"
        return {"content": content, "reasoning_content": reasoning, "finish_reason": finish,
                "prompt_tokens": len(prompt.split()), "completion_tokens": 10 + i}

    return respond


def stdin_tests(pairs: list[tuple[str, str]]) -> str:
    return json.dumps({"inputs": [p[0] for p in pairs], "outputs": [p[1] for p in pairs]})


SUM_CODE = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
WRONG_CODE = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"


def openthoughts_code_rows() -> list[dict[str, Any]]:
    """OpenThoughts-114k ``metadata``-style rows: code with tests, plus a math row of another domain."""
    tests = stdin_tests([("1 2\n", "3\n"), ("10 5\n", "15\n")])
    base = {"ground_truth_solution": None, "starter_code": "", "source": "taco"}
    return [
        {**base, "problem": "Read two integers from one line and print their sum.", "domain": "code",
         "deepseek_reasoning": "Read a and b, print a+b.", "deepseek_solution": SUM_CODE, "test_cases": tests},
        {**base, "problem": "Given two whole numbers separated by a space, output the total of both values.",
         "domain": "code", "deepseek_reasoning": "Subtract?", "deepseek_solution": WRONG_CODE, "test_cases": tests},
        {**base, "problem": "Print the sum of the two integers on the single input line please.",
         "domain": "code", "deepseek_reasoning": "Just explain.", "deepseek_solution": "Add them.",
         "test_cases": tests},
        {**base, "problem": "What is 2+2?", "domain": "math", "deepseek_reasoning": "4",
         "deepseek_solution": "\\boxed{4}", "test_cases": None},
        {**base, "problem": "A code problem whose tests are broken.", "domain": "code",
         "deepseek_reasoning": "x", "deepseek_solution": SUM_CODE, "test_cases": "{not json"},
    ]


def mc_rows() -> list[dict[str, Any]]:
    """Multiple-choice science rows with replayed answers under custom column names (for --map)."""
    questions = [
        ("Which gas do green plants take in for photosynthesis?", ["Oxygen", "Carbon dioxide", "Helium", "Neon"], "B"),
        ("What is the chemical symbol of sodium?", ["So", "Sd", "Na", "S"], "C"),
        ("Which particle carries a negative electric charge?", ["Proton", "Neutron", "Photon", "Electron"], "D"),
        ("What organelle holds most of a eukaryotic cell's DNA?", ["Nucleus", "Ribosome", "Vacuole", "Wall"], "A"),
    ]
    rows = []
    for k, (q, options, gold) in enumerate(questions):
        said = gold if k != 1 else "A"
        rows.append({"q": q, "opts": options, "gold": gold,
                     "response": f"<think>\nRecall the basic fact.\n</think>\n\nAnswer: {said}"})
    return rows
