"""LiveCodeBench semantics: stdin and call-based problems with correct, wrong, slow and crashing
solutions, Decimal comparison edge cases, and the honest programs LCB's runner wrongly fails."""

from __future__ import annotations

import json
import shutil

import pytest

from branchmerge.errors import UserError
from branchmerge.sandbox import Limits, harness, run, run_many
from branchmerge.sandbox.cases import parse_tests
from branchmerge.sandbox.compare import compare_call, compare_stdio
from branchmerge.sandbox.harness import code_names
from tests.sandbox_helpers import AB, AB_OK, TWO_SUM, VERDICT_CASES, VERDICT_IDS

FAST = Limits(timeout_s=2)  # CPU seconds: slow cases run far longer


# ---------------------------------------------------------------- comparison rules (no sandbox)


@pytest.mark.parametrize(
    ("got", "expected", "ok"),
    [
        ("3.0\n", "3", True),  # Decimal equality
        ("0.3333333", "0.333333333", False),  # ... and no epsilon
        ("1 2   \n\n\n", "1 2", True),  # trailing spaces and blank lines
        ("1\n\n2", "1\n2", False),  # a blank line inside is a line
        ("YES", "yes", False),  # case-sensitive
        ("1e3", "1000", True),
        ("  a b", "a b", True),
        ("1 2", "1 2 3", False),
        ("", "", True),
    ],
)
def test_compare_stdio(got, expected, ok):
    assert compare_stdio(got, expected)[0] is ok


def test_compare_call_and_apps_wrapping():
    assert compare_call([1, 2], [1, 2])[0]
    assert not compare_call([1, 2], [[1, 2]])[0]
    assert compare_call([1, 2], [[1, 2]], apps_style=True)[0]
    assert compare_call(True, 1)[0]  # Python ==, as LCB
    assert not compare_call(0.30000000000000004, 0.3)[0]


def test_parse_tests_shapes_and_errors():
    suite = parse_tests({"input_output": json.dumps({"inputs": [["1", "2"]], "outputs": [["1\n2"]]})})
    assert suite.mode == "stdio" and suite.cases[0].send == {"stdin": "1\n2"}
    call = parse_tests({"inputs": ["[1, 2]\n3"], "outputs": ["[4]"], "fn_name": "f"})
    assert call.cases[0].send == {"args": [[1, 2], 3]} and call.cases[0].expected == [4]
    for bad in [{"inputs": ["1"]}, {"inputs": ["1"], "outputs": []}, {"inputs": [], "outputs": []},
                {"inputs": ["x"], "outputs": ["1"], "fn_name": "f"}, {"inputs": [1], "outputs": ["1"]},
                {"inputs": ["1"], "outputs": ["1"], "fn_name": "not a name"}]:  # fmt: skip
        with pytest.raises(UserError):
            parse_tests(bad)


# ---------------------------------------------------------------- stdin problems


def test_stdio_correct_wrong_crashing():
    ok = run(AB_OK, AB, FAST)
    assert ok.verdict == "accepted" and ok.passed == ok.total == 3
    assert [t.verdict for t in ok.tests] == ["accepted"] * 3
    wrong = run("a, b = map(int, input().split())\nprint(a + b if a > 0 else 7)\n", AB, FAST)
    assert wrong.verdict == "wrong_answer" and wrong.passed == 2
    assert len(wrong.tests) == 3 and "expected '0', got '7'" in wrong.tests[2].detail
    crash = run("a, b = map(int, input().split())\nprint(a // (b - 3))\n", AB, FAST)
    assert crash.verdict == "runtime_error" and len(crash.tests) == 1  # stops at the first failure
    assert "ZeroDivisionError" in crash.stderr and "harness" not in crash.stderr
    assert crash.tests[0].detail == "exit status 1"


@pytest.mark.parametrize("case", VERDICT_CASES, ids=VERDICT_IDS)
def test_verdict_table(case):
    """The cases the load test reruns with every core busy; each verdict, and both times reported."""
    _, code, tests, timeout, expected = case
    result = run(code, tests, Limits(timeout_s=timeout, memory_mb=256))
    assert [t.verdict for t in result.tests] == expected, [(t.verdict, t.detail) for t in result.tests]
    last = result.tests[-1]
    if last.verdict == "time_limit":
        assert last.cpu_s >= timeout or last.time_s >= 3 * timeout + 1  # the CPU limit, or the wall cap
        assert last.time_s <= 3 * timeout + 3
    assert result.cpu_s > 0 and all(t.time_s > 0 for t in result.tests)


def test_all_tests_keeps_going_and_to_dict_is_json():
    limits = Limits(timeout_s=1, all_tests=True)
    tests = {"inputs": ["2 3\n", "10 20\n", "2 2\n"], "outputs": ["5\n", "30\n", "4\n"]}
    result = run("a, b = map(int, input().split())\nprint(a * b)\n", tests, limits)
    assert result.verdict == "wrong_answer"
    assert [t.verdict for t in result.tests] == ["wrong_answer", "wrong_answer", "accepted"]
    assert result.lcb_codes() == [-2, -2, True]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "wrong_answer" and data["tier"] and len(data["tests"]) == 3


def test_compile_error():
    result = run("def f(:\n    pass\n", AB, FAST)
    assert result.verdict == "compile_error" and result.tests == []
    assert "SyntaxError" in result.stderr and result.lcb_codes() == [-4]


@pytest.mark.parametrize(
    "code",
    [
        # a module-level `global` (LCB wraps the code in a function and fails it)
        "total = 0\ndef add(x):\n    global total\n    total += x\nfor v in map(int, open(0).read().split()):\n    add(v)\nprint(total)\n",
        # sys.stdin.buffer, read line by line (LCB's mock returns the first line twice)
        "import sys\na = int(sys.stdin.buffer.readline())\nb = int(sys.stdin.buffer.readline())\nprint(a + b)\n",
        # sys.stdout.buffer.write (LCB's StringIO has no .buffer)
        "import sys\na, b = map(int, sys.stdin.read().split())\nsys.stdout.buffer.write(f'{a + b}\\n'.encode())\n",
        # if __name__ == '__main__'
        "def main():\n    a, b = map(int, open(0).read().split())\n    print(a + b)\n\nif __name__ == '__main__':\n    main()\n",
        # LCB's implicit prelude (no import of deque) and exit() after printing
        "q = deque(map(int, open(0).read().split()))\nprint(sum(q))\nexit()\nprint('unreachable')\n",
        # input() with the prelude's `from sys import *` names
        "a = int(stdin.readline())\nb = int(stdin.readline())\nstdout.write(str(a + b) + '\\n')\n",
    ],
)
def test_runner_quirk_programs_pass(code):
    tests = {"inputs": ["2\n3\n"], "outputs": ["5\n"]}
    result = run(code, tests, FAST)
    assert result.verdict == "accepted", (result.detail, result.stderr)


def test_prelude_names_come_from_global_lookups_only(monkeypatch):
    """`x.split()` is an attribute, not re's `split`: only names the bytecode looks up as globals
    (in functions, classes and comprehensions too, past 256 names) choose the prelude's modules."""
    code = compile(
        "\n".join(f"v{i} = {i}" for i in range(300))
        + "\nwords = input().split()\nclass A:\n    q: List[int] = []\n"
        "    def f(self):\n        return [gcd(a, b) for a, b in zip(words, words)]\nprint(Counter(words))\n",
        "<s>", "exec", dont_inherit=True,
    )  # fmt: skip
    names = code_names(code)
    assert {"input", "List", "gcd", "zip", "print", "Counter"} <= names
    assert not {"split", "q", "f"} & names
    # an interpreter whose bytecode fails the probe: every name, attributes too, as before the scan
    monkeypatch.setattr(harness, "_GLOBAL_OPS", {})
    assert {"split", "q", "f", "List", "gcd"} <= code_names(code)
    monkeypatch.undo()
    for dynamic in ("import __main__\nprint(__main__.deque)\n", "import sys\nprint(sys.modules[__name__].deque)\n"):
        assert {"eval", "getattr"} <= code_names(compile(dynamic, "<s>", "exec", dont_inherit=True))


def test_prelude_names_in_string_annotations_are_bound():
    """Under ``from __future__ import annotations`` (or a quoted annotation) a prelude name is
    looked up only when something evaluates the annotation: it must be bound all the same."""
    code = (
        "from __future__ import annotations\n"
        "def f(x: List[int], q: deque, c: 'Counter[str]') -> Optional[int]:\n    return None\n"
        "hints = get_type_hints(f)\nprint(hints['x'], hints['q'], hints['c'], hints['return'])\n"
    )
    expected = "typing.List[int] <class 'collections.deque'> typing.Counter[str] typing.Optional[int]\n"
    result = run(code, {"inputs": [""], "outputs": [expected]}, FAST)
    assert result.verdict == "accepted", (result.tests, result.stderr)


def test_child_starts_as_python3_would():
    """What the harness prepares before forking (streams, module, collector off) is what a
    python3 process reading a file and writing to pipes would have."""
    code = (
        "import gc, sys\nx = input().split()\n"
        "print(gc.isenabled(), sys.stdin.seekable(), sys.stdout.seekable(), sys.stderr.seekable(),"
        " __name__, sum(map(int, x)))\n"
    )
    result = run(code, {"inputs": ["2 3\n"], "outputs": ["True True False False __main__ 5\n"]}, FAST)
    assert result.verdict == "accepted", (result.tests, result.stderr)
    # a bare `split` is re's, as with LiveCodeBench's `from re import *`
    result = run("print(split(',', input()))\n", {"inputs": ["a,b\n"], "outputs": ["['a', 'b']\n"]}, FAST)
    assert result.verdict == "accepted", (result.tests, result.stderr)


# How a program ends, as plain CPython would have it (the harness does not tear the interpreter
# down after a test, so it must still do what CPython does at a normal end).
ENDINGS = {
    "unclosed_fd1_file": ("f = open(1, 'w', closefd=False)\nf.write(str(sum(map(int, open(0).read().split()))) + '\\n')\n",
                          "accepted"),
    "stdout_rebound": ("import io, sys\nprint(sum(map(int, open(0).read().split())))\nsys.stdout = io.StringIO()\n",
                       "accepted"),
    "atexit_prints": ("import atexit\natexit.register(print, sum(map(int, open(0).read().split())))\n", "accepted"),
    "thread_finishes_late": ("import threading, time\ndef late():\n    time.sleep(0.2)\n"
                             "    print(sum(map(int, open(0).read().split())))\n"
                             "threading.Thread(target=late).start()\n", "accepted"),
    "stdout_flush_fails": ("import sys\nclass Bad:\n    def write(self, s):\n        return len(s)\n"
                           "    def flush(self):\n        raise OSError('no')\n    closed = False\n"
                           "print(5)\nsys.stdout.flush()\nsys.stdout = Bad()\n", "runtime_error"),
    "crash_with_handlers_replaced": ("import sys, atexit\nprint(5, flush=True)\nsys.excepthook = lambda *a: None\n"
                                     "atexit.register(lambda: None)\nraise KeyError('late')\n", "runtime_error"),
}


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_program_endings_match_cpython(name):
    code, expected = ENDINGS[name]
    result = run(code, {"inputs": ["2\n3\n"], "outputs": ["5\n"]}, FAST)
    assert result.verdict == expected, (result.tests, result.stderr)
    if name == "stdout_flush_fails":
        assert result.tests[0].detail == "exit status 120"  # as python3 gives when stdout cannot be flushed


def test_big_integers_and_deep_recursion():
    code = (
        "import sys\nsys.setrecursionlimit(10 ** 6)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(depth(100000))\nprint(len(str(10 ** 5000)))\n"
    )
    assert run(code, {"inputs": [""], "outputs": ["100000\n5001"]}, Limits(timeout_s=3)).verdict == "accepted"


# ---------------------------------------------------------------- call-based problems


def test_call_based_class_solution_tuple_and_top_level_function():
    cls = (
        "from typing import List\nclass Solution:\n"
        "    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n"
        "            if target - x in seen:\n                return (seen[target - x], i)\n"
        "            seen[x] = i\n"
    )
    assert run(cls, TWO_SUM, FAST).verdict == "accepted"  # a tuple counts as a list
    top = "def twoSum(nums, target):\n    return [[i, j] for i in range(len(nums)) for j in range(i + 1, len(nums)) if nums[i] + nums[j] == target][0]\n"
    assert run(top, TWO_SUM, FAST).verdict == "accepted"
    main_guard = top + "if __name__ == '__main__':\n    print(input())\n"  # not run for call-based tests
    assert run(main_guard, TWO_SUM, FAST).verdict == "accepted"


def test_call_based_wrong_crashing_slow_unserialisable():
    wrong = run("class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n", TWO_SUM, FAST)
    assert wrong.verdict == "wrong_answer" and wrong.passed == 1
    crash = run("class Solution:\n    def twoSum(self, nums, target):\n        return nums[99]\n", TWO_SUM, FAST)
    assert crash.verdict == "runtime_error" and "IndexError" in crash.stderr
    slow = run("class Solution:\n    def twoSum(self, nums, target):\n        while True:\n            pass\n", TWO_SUM, FAST)
    assert slow.verdict == "time_limit"
    odd = run("class Solution:\n    def twoSum(self, nums, target):\n        return {0, 1}\n", TWO_SUM, FAST)
    assert odd.verdict == "wrong_answer" and "not JSON" in odd.tests[0].detail
    missing = run("class Solution:\n    def other(self):\n        return 1\n", TWO_SUM, FAST)
    assert missing.verdict == "runtime_error"


def test_apps_style_call_based():
    tests = {"inputs": [[2, 3], [10, 5]], "outputs": [[5], [15]], "fn_name": "add"}
    assert run("def add(a, b):\n    return a + b\n", tests, FAST).verdict == "accepted"
    assert run("def add(a, b):\n    return a - b\n", tests, FAST).verdict == "wrong_answer"


def test_float_results_are_exact():
    tests = {"inputs": ["1\n3"], "outputs": ["0.3333333333333333"], "fn_name": "div"}
    assert run("def div(a, b):\n    return a / b\n", tests, FAST).verdict == "accepted"
    assert run("def div(a, b):\n    return round(a / b, 6)\n", tests, FAST).verdict == "wrong_answer"


# ---------------------------------------------------------------- the pool


def test_run_many_keeps_order_and_isolates_solutions():
    codes = [AB_OK, "print(0)\n", "raise SystemExit(3)\n", AB_OK, "import os\nopen('state', 'w').write('x')\nprint(5)\n"]
    results = run_many([(c, AB) for c in codes], FAST, workers=2)
    assert [r.verdict for r in results] == ["accepted", "wrong_answer", "wrong_answer", "accepted", "wrong_answer"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_multiprocessing_pool_in_bwrap():
    # functions defined by the solution pickle by reference to __main__; bwrap gives a private /dev/shm
    code = "import multiprocessing as mp\ndef sq(x):\n    return x * x\nif __name__ == '__main__':\n    with mp.Pool(2) as p:\n        print(sum(p.map(sq, range(10))))\n"
    result = run(code, {"inputs": [""], "outputs": ["285"]}, Limits(timeout_s=5, tier="bwrap"))
    assert result.verdict == "accepted", result.stderr


def test_comparison_work_is_bounded_by_the_expected_output():
    """16 MB of one-character lines or tokens against a one-token answer: no million-object lists
    in the supervisor (it compares for every worker at once)."""
    import tracemalloc

    for got in ("1\n" * 8_000_000, "1 " * 8_000_000):
        tracemalloc.start()
        try:
            ok, _ = compare_stdio(got, "5\n")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not ok and peak < 3 * len(got), peak
