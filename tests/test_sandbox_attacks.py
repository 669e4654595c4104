"""Attacks on the limits and on the verdicts: hostile programs through ``branchmerge sandbox run``
in every safe tier (forced explicitly), with and without the solution's cgroup where that
matters, each with its expected verdict and the host checked afterwards (``host`` fixture: no
process, scratch dir, cgroup, SysV object or file of the sandbox's uid survives)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from branchmerge.sandbox import Limits, run_many
from tests.sandbox_helpers import (
    SAFE_PARAMS,
    cgroup_mode_fixture,  # noqa: F401  (registers the cgroup_mode fixture)
    cli_run,
    host_fixture,  # noqa: F401  (registers the host fixture)
    needs_root,
)

pytestmark = needs_root
ONE = {"inputs": ["1\n"], "outputs": ["1\n"]}
TWO = {"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]}
FAST = ("--timeout-s", "1")


def run_in(tier: str, tmp_path, code: str, tests: dict = ONE, *args: str, name: str = "solution.py") -> dict:
    rc, result = cli_run(tmp_path, code, tests, "--tier", tier, *FAST, *args, name=name)
    assert rc == 0, result
    assert result["tier"] == tier
    return result


# ---------------------------------------------------------------- processes, time, output


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_fork_bomb(tier, tmp_path, host, cgroup_mode):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    result = run_in(tier, tmp_path, code)
    assert result["verdict"] == "time_limit"
    assert time.monotonic() - start < 10
    assert host.uids  # it ran as a dedicated uid, whose processes are all gone (fixture)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_infinite_loop_and_sigterm_ignored(tier, tmp_path, host):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = run_in(tier, tmp_path, code)
    test = result["tests"][0]
    assert result["verdict"] == "time_limit" and "CPU time" in test["detail"]
    assert 1.0 <= test["cpu_s"] < 1.5 and test["time_s"] < 4  # stopped at the CPU limit, not a rounded rlimit


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_threads_count_towards_cpu_time(tier, tmp_path, host):
    code = ("import threading\ndef spin():\n    while True:\n        pass\n"
            "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n")  # fmt: skip
    result = run_in(tier, tmp_path, code)
    assert result["verdict"] == "time_limit" and result["tests"][0]["cpu_s"] >= 1.0


UNREAPED_WORKERS = (
    "import os, time\nr, w = os.pipe()\nfor _ in range(2):\n    if os.fork() == 0:\n"
    "        end = time.process_time() + 0.9\n        while time.process_time() < end:\n            pass\n"
    "        os.write(w, b'x')\n        os._exit(0)\nos.read(r, 1)\nos.read(r, 1)\nprint(input(), flush=True)\nos._exit(0)\n"
)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_cpu_of_workers_it_never_reaps_counts(tier, tmp_path, host, cgroup_mode):
    """Two forked workers burn 0.9 s of CPU each and are never waited for: the test process's own CPU
    time is ~0, the solution's is 1.8 s, over the 1 s limit."""
    if cgroup_mode == "no-cgroup":
        pytest.skip("without a cgroup CPU is counted per process only (sandbox doctor says so)")
    result = run_in(tier, tmp_path, UNREAPED_WORKERS)
    assert result["verdict"] == "time_limit", result
    assert "processes together" in result["tests"][0]["detail"]


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_one_gigabyte_of_output(tier, tmp_path, host):
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    start = time.monotonic()
    result = run_in(tier, tmp_path, code, ONE, "--output-limit-kb", "1024")
    assert result["verdict"] == "output_limit"
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- 6: the harness's limits and priority


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_cannot_touch_the_harness_limits_or_priority(tier, tmp_path, host):
    code = (
        "import os, resource\nppid = os.getppid()\nout = []\n"
        "for name, call in [('nofile', lambda: resource.prlimit(ppid, resource.RLIMIT_NOFILE, (3, 3))),\n"
        "                   ('as', lambda: resource.prlimit(ppid, resource.RLIMIT_AS, (1 << 20, 1 << 20))),\n"
        "                   ('nice', lambda: os.setpriority(os.PRIO_PROCESS, ppid, 19)),\n"
        "                   ('pgrp', lambda: os.setpriority(os.PRIO_PGRP, 0, 19)),\n"
        "                   ('user', lambda: os.setpriority(os.PRIO_USER, 0, 19)),\n"
        "                   ('affinity', lambda: os.sched_setaffinity(ppid, {0}))]:\n"
        "    try:\n        call()\n        out.append(name + ' changed')\n"
        "    except OSError:\n        out.append(name + ' refused')\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))\n"  # its own limits and priority are its business
        "os.setpriority(os.PRIO_PROCESS, 0, 5)\n"
        "print(input(), ' '.join(out))\n"
    )
    refused = "nofile refused as refused nice refused pgrp refused user refused affinity refused"
    tests = {"inputs": ["1\n", "2\n"], "outputs": [f"1 {refused}\n", f"2 {refused}\n"]}
    result = run_in(tier, tmp_path, code, tests)
    assert result["verdict"] == "accepted", result  # and the harness ran the second test normally


# ---------------------------------------------------------------- 7, 8: verdicts it cannot forge


@pytest.mark.parametrize("tier", SAFE_PARAMS)
@pytest.mark.parametrize(
    "code",
    [
        # replaces every exit path it can find, prints the right answer, then crashes
        "import os, sys, builtins\nreal = os._exit\nos._exit = lambda *a: real(0)\nsys.exit = builtins.exit = "
        "lambda *a: real(0)\nsys.excepthook = lambda *a: None\nprint(input())\nraise ValueError('crash')\n",
        # the same through the module the harness itself imported
        "import posix, os\nposix._exit = os._exit = lambda code: None\nprint(input())\n1 / 0\n",
        "import os, signal\nprint(input(), flush=True)\nos.kill(os.getpid(), signal.SIGXCPU)\n",
        "import os\nprint(input(), flush=True)\nos._exit(3)\n",
        "import os, signal\nprint(input(), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "print(input(), flush=True)\nraise MemoryError\n",
        "import ctypes\nprint(input(), flush=True)\nctypes.string_at(0)\n",
    ],
    ids=["exit_paths_replaced", "posix_exit_replaced", "sigxcpu", "exit_3", "sigkill", "memoryerror", "segfault"],
)
def test_self_inflicted_endings_are_runtime_errors(tier, code, tmp_path, host):
    result = run_in(tier, tmp_path, code)
    test = result["tests"][0]
    assert result["verdict"] == "runtime_error", result
    assert test["cpu_s"] < 1 and ("exit status" in test["detail"] or "killed by SIG" in test["detail"])


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_exit_before_printing(tier, tmp_path, host):
    result = run_in(tier, tmp_path, "import sys\nsys.exit(0)\nprint(1)\n")
    assert result["verdict"] == "wrong_answer"


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_reading_the_expected_output(tier, tmp_path, host):
    # walk every frame and every object in the process looking for the expected answer
    code = (
        "import gc, sys\nfound = set()\nneedle = str(4242 * 100 + 42)\n"
        "def scan(obj):\n"
        "    for v in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()):\n"
        "        if isinstance(v, str) and v is not needle and needle in v:\n            found.add(v.strip())\n"
        "f = sys._getframe()\nwhile f:\n    scan(f.f_locals)\n    scan(f.f_globals)\n    f = f.f_back\n"
        "for o in gc.get_objects():\n    scan(o)\n"
        "print(sorted(found)[0] if found else 'nothing')\n"
    )
    result = run_in(tier, tmp_path, code, {"inputs": ["7\n"], "outputs": ["424242\n"]})
    assert result["verdict"] == "wrong_answer"
    assert "nothing" in result["tests"][0]["detail"]


# ---------------------------------------------------------------- 9, 3: memory of the whole solution


@pytest.mark.parametrize("tier", SAFE_PARAMS)
@pytest.mark.parametrize("code", ["x = bytearray(8 * 1024 ** 3)\n", "a = []\nwhile True:\n    a.append(' ' * 10 ** 7)\n"])
def test_memory_bomb(tier, code, tmp_path, host, cgroup_mode):
    result = run_in(tier, tmp_path, code, ONE, "--memory-mb", "256", "--timeout-s", "5")
    if code.startswith("x =") and (cgroup_mode == "no-cgroup" or _refused_outright(8 << 30)):
        # one allocation over the per-process backstop, or over what the machine could ever
        # commit, fails at once: MemoryError, with nothing used that the kernel could report
        assert result["verdict"] == "runtime_error" and "MemoryError" in result["stderr"]
    else:
        assert result["verdict"] == "memory_limit", result


def _refused_outright(size: int) -> bool:
    """Would the kernel refuse one anonymous mapping of ``size`` bytes at once (overcommit
    heuristic: more than RAM and swap; strict: more than is left to commit)?"""
    mode = int(open("/proc/sys/vm/overcommit_memory").read())
    info = {line.split(":")[0]: int(line.split()[1]) << 10 for line in open("/proc/meminfo")}
    if mode == 2:
        return size > info["CommitLimit"] - info["Committed_AS"]
    return mode == 0 and size > info["MemTotal"] + info["SwapTotal"]


TOGETHER = {
    "three_forks": "import os, time\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
    "        x = bytearray(200 << 20)\n        time.sleep(3)\n        os._exit(0)\n    kids.append(pid)\n"
    "for pid in kids:\n    os.waitpid(pid, 0)\nprint(input())\n",
    "memfds": "import os\nfds = []\nfor i in range(8):\n    fd = os.memfd_create(str(i))\n"
    "    os.write(fd, b'x' * (60 << 20))\n    fds.append(fd)\nprint(input())\n",
    "threads": "import threading, time\nblocks = []\ndef grab():\n    blocks.append(bytearray(100 << 20))\n"
    "    time.sleep(2)\nts = [threading.Thread(target=grab) for _ in range(5)]\nfor t in ts:\n    t.start()\n"
    "for t in ts:\n    t.join()\nprint(input())\n",
}


@pytest.mark.parametrize("tier", SAFE_PARAMS)
@pytest.mark.parametrize("name", sorted(TOGETHER))
def test_memory_is_counted_for_the_whole_solution(tier, name, tmp_path, host, cgroup_mode):
    if cgroup_mode == "no-cgroup" and name != "threads":
        pytest.skip("without a cgroup memory is capped per process only (sandbox doctor says so)")
    result = run_in(tier, tmp_path, TOGETHER[name], ONE, "--memory-mb", "256", "--timeout-s", "5")
    assert result["verdict"] == "memory_limit", result


# just over the limit together (2 x 150 MB under 256 MB), and just under it alone (230 MB, with 8 MB
# of output): the cgroup's peak during the test decides, not the harness's headroom above the limit
NEAR = {
    "two_forks_over": ("import os, time\nkids = []\nfor _ in range(2):\n    pid = os.fork()\n    if pid == 0:\n"
                       "        b = bytearray(150 << 20)\n        time.sleep(0.5)\n        os._exit(0)\n"
                       "    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)\nprint(input())\n",
                       "memory_limit"),
    "one_process_under": ("b = bytearray(230 << 20)\nimport sys\nsys.stdout.write('x' * (8 << 20) + '\\n')\n"
                          "print(input())\n", "wrong_answer"),
}


@pytest.mark.parametrize("tier", SAFE_PARAMS)
@pytest.mark.parametrize("name", sorted(NEAR))
def test_memory_near_the_limit(tier, name, tmp_path, host, cgroup_mode):
    if cgroup_mode == "no-cgroup":
        pytest.skip("without a cgroup memory is capped per process only (sandbox doctor says so)")
    code, expected = NEAR[name]
    result = run_in(tier, tmp_path, code, ONE, "--memory-mb", "256", "--timeout-s", "5")
    assert result["verdict"] == expected, result


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_compiler_runs_under_the_memory_limit(tier, tmp_path, host, cgroup_mode):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    start = time.monotonic()
    result = run_in(tier, tmp_path, '#include "/dev/zero"\nint main(){}\n', ONE, "--language", "cpp",
                    "--memory-mb", "256", name="solution.cpp")  # fmt: skip
    assert result["verdict"] == "compile_error", result
    assert time.monotonic() - start < 25  # stopped by memory, long before the 30 s compile timeout
    if cgroup_mode == "cgroup":
        assert "memory limit" in result["detail"]


# ---------------------------------------------------------------- 10: files


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_total_size_of_files_is_capped(tier, tmp_path, host, cgroup_mode):
    if cgroup_mode == "no-cgroup" and tier == "landlock":
        pytest.skip("without a cgroup the landlock tier caps each file only (sandbox doctor says so)")
    code = ("import os\nfor i in range(4):\n    with open(f'f{i}', 'wb') as f:\n"
            "        for _ in range(60):\n            f.write(b'x' * (1 << 20))\nprint(input())\n")  # fmt: skip
    result = run_in(tier, tmp_path, code, TWO, "--memory-mb", "512", "--timeout-s", "5")
    assert result["verdict"] in ("runtime_error", "memory_limit"), result
    assert result["passed"] == 0


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_files_of_one_solution_are_not_charged_to_the_next(tier, host, cgroup_mode, monkeypatch):
    """A cgroup goes back to the pool for the next solution only once the files the last one
    wrote (charged to it as memory) are gone."""
    if cgroup_mode == "no-cgroup":
        pytest.skip("only a cgroup is pooled")
    from branchmerge.sandbox import cgroups

    charged = []
    release = cgroups.Group.release
    monkeypatch.setattr(cgroups.Group, "release", lambda self: (charged.append(self.usage_mb()), release(self))[1])
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (48 << 20))\nprint(input())\n"
    results = run_many([(code, ONE)], Limits(tier=tier, timeout_s=5, memory_mb=512), workers=1)
    assert results[0].verdict == "accepted", results[0]
    assert charged and max(charged) < 24, charged


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_one_file_over_the_file_size_limit(tier, tmp_path, host):
    code = "f = open('big', 'wb')\nf.write(b'x' * (65 << 20))\nprint(1)\n"
    result = run_in(tier, tmp_path, code, ONE, "--memory-mb", "512")
    assert result["verdict"] == "runtime_error" and "File too large" in result["stderr"]


# ---------------------------------------------------------------- 4: the supervisor survives any output


CALL = {"inputs": ["1"], "outputs": ["1"], "fn_name": "f"}
DEEP_RAW = "import os\ndef f(x):\n    os.write(3, b'{\"ok\": ' + b'[' * 100000 + b']' * 100000 + b'}')\n    os._exit(0)\n"
DEEP_VALUE = "def f(x):\n    v = []\n    for _ in range(5000):\n        v = [v]\n    return v\n"
GARBAGE = "import os\ndef f(x):\n    os.write(3, os.urandom(1 << 20))\n    os._exit(0)\n"
HONEST = "def f(x):\n    return x\n"


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_a_batch_survives_nested_and_garbage_results(tier, host):
    jobs = [(DEEP_RAW, CALL), (HONEST, CALL), (DEEP_VALUE, CALL), (GARBAGE, CALL), (HONEST, CALL)]
    results = run_many(jobs, Limits(timeout_s=2, tier=tier), workers=2)
    verdicts = [r.verdict for r in results]
    assert verdicts[1] == verdicts[4] == "accepted"
    assert verdicts[0] == verdicts[3] == "wrong_answer"
    assert verdicts[2] in ("runtime_error", "wrong_answer")  # json.dumps recursion in the child, or refused
    assert "nest" in results[0].tests[0].detail


def test_every_solution_of_a_batch_gets_a_result(monkeypatch):
    from branchmerge.sandbox import supervisor

    real = supervisor._execute

    def flaky(code, *args):
        if "boom" in code:
            raise RuntimeError("supervisor bug")
        return real(code, *args)

    monkeypatch.setattr(supervisor, "_execute", flaky)
    results = run_many([("print(1)  # boom\n", ONE), ("print(input())\n", ONE)], Limits(timeout_s=2), workers=2)
    assert [r.verdict for r in results] == ["sandbox_error", "accepted"]
    assert "supervisor bug" in results[0].detail


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_kill_its_parent(tier, tmp_path, host):
    code = ("import os, signal\nfor pid in (os.getppid(), -1):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nprint(input())\n")  # fmt: skip
    result = run_in(tier, tmp_path, code, TWO)
    assert result["verdict"] == "accepted"  # both refused: the harness ran the second test too
    assert os.getpgid(0) >= 0


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_setsid_daemon_does_not_outlive_the_run(tier, tmp_path, host):
    code = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "        while True:\n            open('daemon.txt', 'a').write('x')\n            time.sleep(0.01)\n"
        "    os._exit(0)\n"
        "print(input())\n"
    )
    result = run_in(tier, tmp_path, code, TWO)
    assert result["verdict"] == "accepted"
    assert result["passed"] == 2  # the daemon of test 1 did not hang test 2 either
