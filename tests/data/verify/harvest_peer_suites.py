"""Rebuild ``peer_suites.jsonl``: other projects' answer-equivalence test cases, taken as data.

Not run by the tests (they read only the JSONL it wrote). Run it by hand with local clones:

    python tests/data/verify/harvest_peer_suites.py MATH_VERIFY_GIT LIGHTEVAL_GIT OPEN_R1_GIT

Each argument is a git directory (a bare mirror is enough). The suite files at HEAD are read with
``ast`` (their code is never imported or run); each literal ``(gold, prediction, expected)`` case
is kept with where it came from, its licence and the settings the suite ran it with. Cases a
suite has commented out are not cases (several were disabled because their label was wrong).

- Math-Verify (Apache-2.0; ``tests/test_all.py`` carries lighteval's MIT header): tests/*.py
- lighteval (MIT): tests/{,unit/}metrics/test_extractive_match.py, test_cases/gpqa_instruct_metric.json
- open-r1 (Apache-2.0): tests/test_rewards.py (accuracy_reward cases)
- Math-Verify's newer tests/test_mixed_number_extraction.py and test_failed_latex_span.py, written
  as code rather than parameters: transcribed by hand (``TRANSCRIBED``)

``gold`` is the suite's gold reduced to a bare answer (last box, else the one maths environment
that wraps it, else math-verify's own extraction); ``domain`` is ``science`` for option-letter
cases. A stable hash puts about a quarter of the cases in ``split = "holdout"``: they are
measured, never tuned on.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).with_name("peer_suites.jsonl")
DEFAULTS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}
SOURCES = {
    "Math-Verify": ("huggingface/Math-Verify", "Apache-2.0", ["tests/"]),
    "lighteval": ("huggingface/lighteval", "MIT", [
        "tests/metrics/test_extractive_match.py", "tests/unit/metrics/test_extractive_match.py",
        "tests/unit/metrics/test_cases/gpqa_instruct_metric.json"]),
    "open-r1": ("huggingface/open-r1", "Apache-2.0", ["tests/test_rewards.py"]),
}


# Suites that state their cases in Given/When/Then code rather than literal parameters, transcribed
# by hand as (test, gold, prediction, expected); each parse-only assertion ("parses to 40/9") is
# the pair (that value, prediction, 1). From Math-Verify (Apache-2.0) after the commit above.
_MV = "huggingface/Math-Verify@"
_MIXED = _MV + "05aa3a67e1:tests/test_mixed_number_extraction.py"
_SPAN = _MV + "056ad6253a:tests/test_failed_latex_span.py"
_SUM = "$\\sum_{k=0}^n\\bigl(k\\bigr)$"
_INVALID = [("4 4/0", ("4", "0")), ("4 0/0", ("4", "0")), ("-4 0/0", ("-4", "0")), ("0 0/0", ("0",)),
            ("1 000 0/0", ("1000", "0")), ("-1 000 0/0", ("-1000", "0")), ("11 6/6", ("11", "1", "12", "10")),
            ("11 7/6", ("11", "7/6", "73/6", "59/6")), ("The answer is 11 6/6.", ("11", "1", "12", "10")),
            ("The answer is 4 0/0.", ("4", "0"))]
_PERCENT = ["%", " %", "percent", " percent", "percentage", " percentage", "pct", " pct"]
TRANSCRIBED = [
    (_MIXED, "test_parse_positive_mixed_number_as_complete_value", "40/9", "4 4/9", 1),
    (_MIXED, "test_parse_negative_mixed_number_as_negative_complete_value", "-40/9", "-4 4/9", 1),
    (_MIXED, "test_parse_mixed_number_with_optional_positive_sign", "71/6", "11 5/6", 1),
    (_MIXED, "test_parse_mixed_number_with_optional_positive_sign", "71/6", "+11 5/6", 1),
    (_MIXED, "test_extract_mixed_number_from_answer_sentence", "40/9", "The answer is 4 4/9.", 1),
    (_MIXED, "test_mixed_number_does_not_match_only_its_whole_number_prefix", "4", "The answer is 4 4/9.", 0),
    (_MIXED, "test_parse_mixed_number_with_zero_whole_part", "4/9", "0 4/9", 1),
    (_MIXED, "test_parse_mixed_number_with_zero_numerator_as_whole_value", "4", "4 0/9", 1),
    (_MIXED, "test_parse_mixed_number_with_spaced_thousands_whole_part", "9004/9", "1 000 4/9", 1),
    *[(_MIXED, "test_invalid_mixed_number_has_no_finite_component_equivalence", gold, pred, 0)
      for pred, golds in _INVALID for gold in golds],
    *[(_MIXED, "test_non_mixed_syntax_does_not_gain_an_implicit_operation", gold, pred, 0) for pred, gold in
      [("11/10 4/9", "139/90"), ("11.0 4/9", "103/9"), ("(11) 4/9", "103/9"), ("11/10\n4/9", "139/90")]],
    *[(_MIXED, "test_line_separator_does_not_form_a_mixed_number", gold, f"11{sep}5/6", label)
      for sep in ("\n", "\r\n") for gold, label in (("71/6", 0), ("5", 1))],
    (_MIXED, "test_explicit_addition_and_subtraction_remain_distinct", "11 + 4/9", "11 - 4/9", 0),
    *[(_MIXED, "test_mixed_number_percentage_applies_to_complete_value", gold, f"4 4/9{suffix}", label)
      for suffix in _PERCENT for gold, label in (("40/900", 1), ("40/9", 0))],
    *[(_MIXED, "test_existing_expression_syntax_is_unchanged", gold, pred, 1) for pred, gold in
      [("4 + 4/9", "40/9"), ("10/2", "5"), ("1 000", "1000"), ("$5.00", "5"), ("28%", "7/25"),
       ("There are 4 objects and 4/9 remain.", "4/9"), ("4 4/9 2", "2")]],
    *[(_SPAN, "test_failed_latex_retains_independent_fallbacks", gold, f"Final answer is {_SUM}. I hope. {suffix}", 1)
      for suffix, gold in (("42", "42"), ("$42$", "42"), ("1/2", "1/2"))],
    (_SPAN, "test_same_priority_and_multiple_latex_groups", "42", f"{_SUM} and $42$", 1),
    (_SPAN, "test_same_priority_and_multiple_latex_groups", "42", f"$42$ and {_SUM}", 1),
]


def transcribed_cases() -> list[dict]:
    return [{"test": test, "source": source, "gold_raw": gold, "pred": pred, "expected": expected,
             "match_types": ["latex", "expr"], "language": "english", "settings": {}, "domain": "math"}
            for source, test, gold, pred, expected in TRANSCRIBED]


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], capture_output=True, text=True, check=True).stdout


def head_files(repo: str, paths: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The HEAD commit and (path, text) of each suite file there."""
    head = git(repo, "rev-parse", "HEAD").strip()
    files = [p for p in git(repo, "ls-tree", "-r", "--name-only", head, "--", *paths).split() if p.endswith((".py", ".json"))]
    return head, [(path, git(repo, "show", f"{head}:{path}")) for path in files]


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _call_settings(fn: ast.FunctionDef) -> tuple[str, dict]:
    """Which helper the test calls and with which keyword settings (values may name a param)."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "compare_strings":
                settings = {}
                pos = ["gold", "pred", "language", "match_types", "precision"]
                for i, arg in enumerate(node.args[2:], start=2):
                    settings[pos[i]] = arg
                for kw in node.keywords:
                    settings[kw.arg] = kw.value
                return "compare_strings", settings
            if node.func.id == "verify" and node.args and isinstance(node.args[0], ast.Call):
                return "verify_parse", {k.arg: k.value for k in node.keywords}
            if node.func.id == "parse" and any(isinstance(a, ast.List) for a in node.args[1:]):
                return "string_extraction", {}
    return "", {}


def _resolve(value: ast.AST, params: dict):
    if isinstance(value, ast.Name):
        return params.get(value.id)
    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "Language":
        return value.attr.lower()
    return _literal(value)


def _language(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Language":
        return node.attr.lower()
    return None


def parametrized_cases(text: str) -> list[dict]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    cases = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        helper, call = _call_settings(fn)
        if not helper:
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize" and len(dec.args) >= 2):
                continue
            names = [n.strip() for n in _literal(dec.args[0]).split(",")]
            if not isinstance(dec.args[1], ast.List):
                continue
            for elt in dec.args[1].elts:
                if not isinstance(elt, ast.Tuple) or len(elt.elts) != len(names):
                    continue
                params = {}
                for name, node in zip(names, elt.elts):
                    params[name] = _language(node) or _literal(node)
                if helper == "string_extraction":
                    cases += _string_case(params, fn.name)
                    continue
                expected = params.get("expected", params.get("result"))
                gold, pred = params.get("gold"), params.get("pred")
                if not isinstance(gold, str) or not isinstance(pred, str) or expected is None:
                    continue  # a computed value (f-string, call): not literal data
                settings = {k: _resolve(v, params) for k, v in call.items() if k not in ("gold", "pred")}
                match = settings.pop("match_types", None) or ["latex", "expr"]
                language = settings.pop("language", None) or params.get("language") or "english"
                settings = {k: v for k, v in settings.items() if k in DEFAULTS}
                choice = match == ["NativeLetters"]
                cases.append({"test": fn.name, "gold_raw": gold, "pred": pred, "expected": int(bool(expected)),
                              "match_types": match, "language": language, "settings": settings,
                              "domain": "science" if choice else "math"})
    return cases


def _string_case(params: dict, test: str) -> list[dict]:
    expected = params.get("expected") or []
    if len(expected) != 2 or not isinstance(params.get("pred"), str):
        return []
    return [{"test": test, "gold_raw": expected[1], "pred": params["pred"], "expected": 1,
             "match_types": ["string"], "language": "english", "settings": {}, "domain": "science"}]


def gpqa_json_cases(text: str) -> list[dict]:
    try:
        suite = json.loads(text)
    except ValueError:
        return []  # an LFS pointer or a broken revision
    cases = []
    for case in suite.get("test_cases", []):
        doc, texts = case["doc"], case["model_response"]["text"]
        if len(texts) != 1:
            continue
        cases.append({"test": case["name"], "gold_raw": doc["choices"][doc["gold_index"]], "pred": texts[0],
                      "expected": int(case["expected_output"]["extractive_match"] > 0.5), "match_types": ["letters"],
                      "language": "english", "settings": {}, "domain": "science"})
    return cases


def open_r1_cases(text: str) -> list[dict]:
    """accuracy_reward tests: ``completion(s) = [[{"content": ...}]]``, ``solution(s) = [...]``,
    ``assertEqual(rewards[i], v)``."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    cases = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "accuracy_reward"]
        if not calls:
            continue
        values = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                values[node.targets[0].id.rstrip("s")] = _literal(node.value)
        comps, sols = values.get("completion"), values.get("solution")
        if not isinstance(comps, list) or not isinstance(sols, list):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "assertEqual" and len(node.args) == 2:
                target, value = node.args
                if isinstance(target, ast.Subscript) and _literal(target.slice) is not None:
                    i, v = _literal(target.slice), _literal(value)
                    if isinstance(i, int) and i < len(comps) and i < len(sols) and v in (0, 1, 0.0, 1.0):
                        cases.append({"test": fn.name, "gold_raw": sols[i], "pred": comps[i][0]["content"],
                                      "expected": int(v), "match_types": ["latex"], "language": "english",
                                      "settings": {}, "domain": "math"})
    return cases


# ---- reducing a gold to a bare answer ------------------------------------------------------------

_ENV = re.compile(r"^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\((.*)\\\)|\\\[(.*)\\\])\s*\.?\s*$", re.DOTALL)


def _boxes(text: str) -> list[str]:
    out, i = [], 0
    while (i := text.find("\\boxed{", i)) >= 0:
        depth, j = 0, i + 6
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        out.append(text[i + 7 : j])
        i = j
    return out


# golds written as several boxes: the reading the suites' own labels require (latex2sympy2's
# joining rule reads "\boxed{1} and and and or thus but \boxed{2} and \boxed{3}" as 1,2,3, the
# suites say 2,3)
MULTI_BOX_GOLDS = {
    r"$\\boxed{35 cm} ++++++ \\boxed{4}$": "35 cm, 4",
    r"\(\boxed{1}\) and \(\boxed{-2}\).": "1, -2",
    r"$\boxed{1}\boxed{2}$": "1, 2",
    r"\boxed{1} papers and \boxed{2} bins": "1, 2",
    r"$$\boxed{2}, \boxed{3}, \boxed{5}, \boxed{7}, \boxed{13}$$": "2, 3, 5, 7, 13",
    r"\boxed{1} and and and or thus but \boxed{2} and \boxed{3}": "2, 3",
    r"\boxed{1} no no no no no \boxed{2}": "2",
    r"\boxed{1} no no no or no no \boxed{2}": "2",
}


def bare_gold(raw: str, domain: str) -> str:
    if raw in MULTI_BOX_GOLDS:
        return MULTI_BOX_GOLDS[raw]
    if domain == "science":
        found = re.findall(r"^\s*\(?([A-J])\)?(?:[\s.]|$)", raw, re.MULTILINE)
        return found[-1] if found else raw.strip()
    boxes = _boxes(raw)
    if boxes:
        return boxes[-1].strip()
    m = _ENV.match(raw)
    if m and "$" not in next(g for g in m.groups() if g is not None).strip("$"):
        return next(g for g in m.groups() if g is not None).strip()
    if len(raw) < 40:
        return raw.strip()
    from math_verify import parse

    parsed = parse(raw)
    return str(parsed[1]).strip() if len(parsed) > 1 else raw.strip()


def main() -> None:
    repos = dict(zip(SOURCES, sys.argv[1:4]))
    found: dict[tuple, dict] = {}
    for name, git_dir in repos.items():
        slug, licence, paths = SOURCES[name]
        head, files = head_files(git_dir, paths)
        for path, text in files:
            if path.endswith(".json"):
                cases = gpqa_json_cases(text)
            elif name == "open-r1":
                cases = open_r1_cases(text)
            else:
                cases = parametrized_cases(text)
            for case in cases:
                settings = {**DEFAULTS, **{k: v for k, v in case["settings"].items() if v is not None}}
                key = (name, case["domain"], case["gold_raw"], case["pred"], tuple(sorted(settings.items())))
                case.update(settings=settings, suite=name, source=f"{slug}@{head[:10]}:{path}::{case['test']}",
                            licence=licence)
                found.setdefault(key, case)
    for case in transcribed_cases():
        key = ("Math-Verify", case["domain"], case["gold_raw"], case["pred"], tuple(sorted(DEFAULTS.items())))
        found.setdefault(key, {**case, "settings": DEFAULTS, "suite": "Math-Verify",
                               "source": f"{case['source']}::{case['test']}", "licence": SOURCES["Math-Verify"][1]})
    rows = []
    for case in found.values():
        digest = hashlib.sha256(f"{case['gold_raw']}\x1f{case['pred']}".encode()).hexdigest()
        default = case["settings"] == DEFAULTS
        tag = "" if default else "-" + hashlib.sha256(json.dumps(case["settings"], sort_keys=True).encode()).hexdigest()[:4]
        rows.append({
            "id": f"{case['suite']}-{digest[:10]}{tag}", "suite": case["suite"], "source": case["source"],
            "licence": case["licence"], "domain": case["domain"], "gold_raw": case["gold_raw"],
            "gold": bare_gold(case["gold_raw"], case["domain"]), "pred": case["pred"], "expected": case["expected"],
            "language": case["language"], "match_types": case["match_types"], "settings": case["settings"],
            "default_settings": default, "split": "holdout" if int(digest[:8], 16) % 4 == 0 else "dev",
        })
    rows.sort(key=lambda r: r["id"])
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} cases -> {OUT}")


if __name__ == "__main__":
    main()
