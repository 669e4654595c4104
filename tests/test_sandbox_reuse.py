"""A sandbox serves several solutions in turn: the next one must find what a fresh sandbox has
(no file, no process, no changed mode of the last one), its CPU time must be its own, and a
sandbox is replaced after ``REUSE_MAX`` solutions or after anything that spoils it."""

from __future__ import annotations

import pytest

from branchmerge.sandbox import session as session_mod
from branchmerge.sandbox.results import Limits
from branchmerge.sandbox.supervisor import run_many
from tests.sandbox_helpers import SAFE_PARAMS, has_cgroup, lying_harness

# which sandbox a solution runs in: its harness's pid and its own (in a pid namespace of its own the
# harness is pid 1 or 2 and the first test of a fresh sandbox gets the next pid)
IDENT = "import os\nident = f'{os.getppid()}:{os.getpid()}'\n"
# leaves files (nested, in a dir it made unreadable, and in /dev/shm where it can write), a
# detached sleeper, and its working dir read-only
LEAVE = IDENT + (
    "import os, time\n"
    "os.makedirs('a/b/c')\nopen('a/b/c/f', 'w').write('x')\nopen('top', 'w').write('x')\nos.chmod('a', 0)\n"
    "try:\n    open('/dev/shm/left', 'w').write('x')\nexcept OSError:\n    pass\n"
    "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
    "time.sleep(0.2)\nos.chmod('.', 0o500)\nprint(ident)\n"
)
# what the next solution sees: which sandbox, the files in its working dir and in /dev/shm, the
# processes of its pid namespace beside itself and its harness (kill(pid, 0) finds them; the
# landlock tier has no namespace of its own to search), whether it can write
LOOK = IDENT + (
    "shm = sorted(os.listdir('/dev/shm')) if os.getcwd() == '/tmp' else []\n"
    "others = []\n"
    "for pid in range(3, 400) if os.getppid() <= 2 else ():\n"
    "    try:\n        os.kill(pid, 0)\n    except ProcessLookupError:\n        continue\n"
    "    except PermissionError:\n        pass\n"
    "    if pid != os.getpid():\n        others.append(pid)\n"
    "open('new', 'w').write('x')\n"
    "print(ident, sorted(os.listdir('.')), shm, others)\n"
)


def _ident(result) -> str:
    return result.tests[0].detail.split("got ")[1].strip("'\"").split()[0]


def _sandboxes(results) -> list[int]:
    """A number per result, the same for results that ran in the same sandbox."""
    numbers, last = [], None
    for result in results:
        ppid, pid = map(int, _ident(result).split(":"))
        fresh = pid == ppid + 1 if ppid <= 2 else ppid != last
        numbers.append((numbers[-1] if numbers else -1) + fresh)
        last = ppid
    return numbers


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_next_solution_finds_a_fresh_sandbox(tier):
    jobs = [(LEAVE, {"inputs": [""], "outputs": ["?"]}), (LOOK, {"inputs": [""], "outputs": ["?"]})]
    first, second = run_many(jobs, Limits(tier=tier, timeout_s=5), workers=1)
    assert first.verdict == second.verdict == "wrong_answer", (first.detail, first.stderr, second.stderr)
    got = second.tests[0].detail.split("got ", 1)[1].strip("'\"")
    assert _sandboxes([first, second]) == [0, 0], "the second solution did not run in the recycled sandbox"
    # nothing of the first: only the file the second just made, no process of its uid left
    assert got.split(" ", 1)[1] == "['new'] [] []", got


def test_cpu_time_is_each_solutions_own():
    busy = "s = 0\nfor i in range(6_000_000):\n    s += i\nprint(1)\n"
    idle = "print(1)\n"
    jobs = [(busy, {"inputs": [""], "outputs": ["1"]}), (idle, {"inputs": [""], "outputs": ["1"]})]
    slow, quick = run_many(jobs, Limits(timeout_s=5), workers=1)
    assert slow.verdict == quick.verdict == "accepted"
    assert slow.cpu_s > 0.2 and quick.cpu_s < 0.15, (slow.cpu_s, quick.cpu_s)


def test_replaced_after_reuse_max(monkeypatch):
    monkeypatch.setattr(session_mod, "REUSE_MAX", 2)
    code = IDENT + "print(ident)\n"
    results = run_many([(code, {"inputs": [""], "outputs": ["?"]})] * 5, Limits(timeout_s=5), workers=1)
    assert _sandboxes(results) == [0, 0, 1, 1, 2], [_ident(r) for r in results]


@pytest.mark.skipif(not has_cgroup(), reason="an OOM kill is only counted in a cgroup")
def test_not_reused_after_an_oom_kill():
    hog = "b = bytearray(400 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
    code = IDENT + "print(ident)\n"
    jobs = [(code, {"inputs": [""], "outputs": ["?"]}), (hog, {"inputs": [""], "outputs": ["?"]}),
            (code, {"inputs": [""], "outputs": ["?"]})]  # fmt: skip
    first, oom, after = run_many(jobs, Limits(timeout_s=5, memory_mb=128), workers=1)
    assert oom.verdict == "memory_limit", (oom.verdict, oom.detail)
    assert _sandboxes([first, after]) == [0, 1], (_ident(first), _ident(after))


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_orphans_do_not_pile_up_across_solutions(tier):
    """Each solution orphans 12 sleepers (killed after its test). In a recycled sandbox their zombies
    must be reaped at once, or over a few solutions they would use up the process limit (16) and
    later solutions would fail to fork."""
    orphans = (
        "import os, time\n"
        "for _ in range(12):\n"
        "    if os.fork() == 0:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
        "print('ok')\n"
    )
    results = run_many([(orphans, {"inputs": [""], "outputs": ["ok"]})] * 5, Limits(tier=tier, processes=16), workers=1)
    assert [r.verdict for r in results] == ["accepted"] * 5, [(r.detail, r.stderr[-300:]) for r in results]


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_supervisor_checks_the_clean_up_itself(tier, monkeypatch):
    """The harness's 'clean' is checked from outside: files left (tmpfs pages charged to the
    cgroup, inodes on the sandbox's own /tmp, names in a host scratch dir) close the sandbox, and
    the next solution runs in a fresh one that has none of them."""
    monkeypatch.setattr(session_mod, "HARNESS", lying_harness())
    jobs = [(LEAVE, {"inputs": [""], "outputs": ["?"]}), (LOOK, {"inputs": [""], "outputs": ["?"]})]
    first, second = run_many(jobs, Limits(tier=tier, timeout_s=5), workers=1)
    got = second.tests[0].detail.split("got ", 1)[1].strip("'\"")
    assert _sandboxes([first, second]) == [0, 1], (got, second.stderr)
    assert got.split(" ", 1)[1] == "['new'] [] []", got
    # an empty file or dir holds no tmpfs page: counted by inodes or names
    empty = IDENT + "import os\nos.mkdir('d')\nopen('e', 'w').close()\nprint(ident)\n"
    jobs = [(empty, {"inputs": [""], "outputs": ["?"]}), (LOOK, {"inputs": [""], "outputs": ["?"]})]
    first, second = run_many(jobs, Limits(tier=tier, timeout_s=5), workers=1)
    assert _sandboxes([first, second]) == [0, 1], second.tests[0].detail


@pytest.mark.skipif(not has_cgroup(), reason="the processes of a sandbox are listed by its cgroup")
@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_supervisor_sees_a_process_the_harness_left(tier, monkeypatch):
    monkeypatch.setattr(session_mod, "HARNESS", lying_harness(kill_after_tests=True))
    sleeper = IDENT + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\nprint(ident)\n"
    code = IDENT + "print(ident)\n"
    jobs = [(sleeper, {"inputs": [""], "outputs": ["?"]}), (code, {"inputs": [""], "outputs": ["?"]})]
    first, second = run_many(jobs, Limits(tier=tier, timeout_s=5), workers=1)
    assert _sandboxes([first, second]) == [0, 1], (_ident(first), _ident(second))
