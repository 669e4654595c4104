"""C++ solutions: compiled once per solution with g++ inside the sandbox, then one exec per test."""

from __future__ import annotations

import shutil

import pytest

from branchmerge.errors import UserError
from branchmerge.sandbox import Limits, run
from tests.sandbox_helpers import HostWatch, cli_run, needs_root, tier_param

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
AB = {"inputs": [f"{i} {2 * i}\n" for i in range(10)], "outputs": [f"{3 * i}\n" for i in range(10)]}
FAST = Limits(timeout_s=1, memory_mb=512)
READ = "#include <cstdio>\nint main(){long long a,b;if(scanf(\"%lld %lld\",&a,&b)!=2)return 1;"


def test_cpp_verdicts():
    ok = run(READ + 'printf("%lld\\n",a+b);}', AB, FAST, language="cpp")
    assert ok.verdict == "accepted" and ok.passed == 10
    assert sum(t.time_s for t in ok.tests) < 1.0  # compiled once, not per test
    wrong = run(READ + 'printf("%lld\\n",a*b+1);}', AB, FAST, language="cpp")
    assert wrong.verdict == "wrong_answer" and len(wrong.tests) == 1
    crash = run(READ + "int *p=0; *p=(int)a; return *p;}", AB, FAST, language="cpp")
    assert crash.verdict == "runtime_error"
    slow = run(READ + "volatile long long x=a; for(;;) x++;}", AB, FAST, language="cpp")
    assert slow.verdict == "time_limit"
    bomb = run("#include <vector>\nint main(){std::vector<char> v(8000000000ULL); return v[1];}", AB, FAST, language="cpp")
    assert bomb.verdict == "memory_limit"


def test_cpp_compile_error_and_call_based_refused(tmp_path):
    rc, result = cli_run(tmp_path, "int main(){ return undefined_name; }", AB, "--language", "cpp")
    assert rc == 0 and result["verdict"] == "compile_error"
    assert "undefined_name" in result["detail"] and result["tests"] == []
    with pytest.raises(UserError):
        run("int main(){}", {"inputs": ["1"], "outputs": ["1"], "fn_name": "f"}, language="cpp")


@needs_root
@pytest.mark.parametrize("tier", [tier_param("bwrap"), "landlock"])
def test_cpp_fork_bomb_contained(tier, monkeypatch):
    watch = HostWatch(monkeypatch)
    code = "#include <unistd.h>\nint main(){ for(;;) fork(); }"
    result = run(code, AB, Limits(timeout_s=1, tier=tier), language="cpp")
    assert result.verdict == "time_limit"
    watch.assert_clean()
