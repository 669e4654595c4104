"""What a user without root gets: the landlock tier as the caller's own uid, no cgroup, no uid of
the sandbox's own to sweep; bwrap and unshare in a user namespace of their own. Run for real as
``nobody`` (the test needs root to become it). A detached, double-forked sleeper must not outlive
its test, a recycled sandbox must hand the next solution nothing of the last one, and the process
limit must count the sandbox's own processes only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from branchmerge.sandbox.confine import landlock_abi
from branchmerge.sandbox.tiers import nproc_per_userns
from tests.sandbox_helpers import lying_harness

NOBODY = 65534
SETPRIV = shutil.which("setpriv")

# the sleeper's pid comes back through a pipe and is printed; the files stay in the working dir
LEAVE = (
    "import os, time\n"
    "r, w = os.pipe()\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        time.sleep(60)\n"
    "    os.write(w, str(pid).encode())\n"
    "    os._exit(0)\n"
    "os.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\nos.chmod('a', 0)\n"
    "print(os.getppid(), os.read(r, 20).decode())\n"
)
LOOK = "import os\nopen('new', 'w').write('x')\nprint(os.getppid(), sorted(os.listdir('.')))\n"
# run as nobody: both solutions on one worker, the verdicts' details back as JSON
# (RLIMIT_NPROC only keeps a fork bomb that got out from taking the machine down with the test)
DRIVER = """
import json, os, resource, sys, time
from branchmerge.sandbox import Limits, run_many
resource.setrlimit(resource.RLIMIT_NPROC, (400, 400))
codes, timeout_s, tier, processes, others = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if sys.argv[6]:  # another harness's source (a file): one that clears nothing and says 'clean'
    from branchmerge.sandbox import session
    session.HARNESS = open(sys.argv[6]).read()
kids = []  # other processes of the same uid, outside the sandbox
for _ in range(others):
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    kids.append(pid)
jobs = [(code, {"inputs": [""], "outputs": ["?"]}) for code in codes]
results = run_many(jobs, Limits(tier=tier, timeout_s=timeout_s, processes=processes), workers=1)
for pid in kids:
    os.kill(pid, 9)
print(json.dumps([[r.verdict, r.tests[0].detail if r.tests else r.detail, r.tier] for r in results]))
"""


def _as_nobody(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, "TMPDIR": cwd}
    argv = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def nobody_dir():
    """A dir nobody can write, skipping where nobody cannot run this checkout (a clone in a
    private home dir)."""
    if os.geteuid() != 0 or not SETPRIV:
        pytest.skip("needs root and setpriv to run as another user")
    path = tempfile.mkdtemp(prefix="branchmerge-nobody-")
    os.chmod(path, 0o777)
    probe = _as_nobody(["-c", "import branchmerge.sandbox"], path)
    if probe.returncode != 0:
        shutil.rmtree(path)
        pytest.skip(f"nobody cannot import this checkout: {probe.stderr.strip()[-200:]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_as_nobody(codes: list[str], cwd: str, timeout_s: float = 5, tier: str = "landlock", processes: int = 64,
                   others: int = 0, harness: str | None = None) -> list[list[str]]:
    """``codes`` run as nobody, one after another on one worker; ``harness``: another harness's source."""
    source = ""
    if harness is not None:
        source = os.path.join(cwd, "harness.py")
        Path(source).write_text(harness)
    proc = _as_nobody(["-c", DRIVER, json.dumps(codes), str(timeout_s), tier, str(processes), str(others), source], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _nobodys_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == NOBODY:
                    found.append(int(entry.name))
            except FileNotFoundError:
                pass
    return found


def _alive_as_nobody(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}").stat().st_uid == NOBODY
    except FileNotFoundError:
        return False


def test_without_root_nothing_outlives_a_test_and_a_recycled_sandbox_is_clean(nobody_dir):
    (v1, d1, tier1), (v2, d2, tier2) = _run_as_nobody([LEAVE, LOOK], nobody_dir)
    assert tier1 == tier2 == "landlock" and v1 == v2 == "wrong_answer", (d1, d2)
    harness1, sleeper = d1.split("got ", 1)[1].strip("'\"").split()
    harness2, files = d2.split("got ", 1)[1].strip("'\"").split(" ", 1)
    assert harness1 == harness2, "the second solution did not run in the recycled sandbox"
    assert files == "['new']", files  # nothing the first left: not even its unreadable dir
    assert not _alive_as_nobody(int(sleeper)), f"the detached sleeper {sleeper} outlived its test"
    assert not [p for p in Path(nobody_dir).iterdir() if p.name.startswith("branchmerge-sbx-")]


@pytest.mark.skipif(
    landlock_abi() < 6, reason="kill(-1) is confined to the sandbox by Landlock's signal scope (ABI >= 6)"
)
def test_without_root_a_fork_bomb_out_of_its_process_group_is_killed(nobody_dir):
    """Every process forks forever, each in a session of its own (out of reach of the test's
    process group): the harness still kills them all, and the next solution runs."""
    bomb = "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n    except OSError:\n        pass\n"
    before = _nobodys_processes()
    (v1, d1, _), (v2, d2, _) = _run_as_nobody([bomb, LOOK], nobody_dir, timeout_s=1)
    assert v1 == "time_limit", d1
    assert v2 == "wrong_answer" and d2.endswith("['new']\""), d2
    assert not [pid for pid in _nobodys_processes() if pid not in before]


FORKS = (
    "import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
    "    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    n += 1\nprint(n)\n"
)


@pytest.mark.skipif(not nproc_per_userns(), reason="RLIMIT_NPROC counts per user namespace from Linux 5.14")
@pytest.mark.parametrize("tier", ["bwrap", "unshare"])
def test_without_root_the_process_limit_counts_the_sandbox_only(nobody_dir, tier):
    """In a user namespace of its own, RLIMIT_NPROC counts the sandbox's processes only: 40 other
    processes of the caller's uid take nothing from a solution's 16, and it gets no more than 16
    (harness and test process included)."""
    if tier == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap not installed")
    (verdict, detail, got_tier), = _run_as_nobody([FORKS], nobody_dir, tier=tier, processes=16, others=40)
    assert got_tier == tier and verdict == "wrong_answer", detail
    forked = int(detail.split("got ", 1)[1].strip("'\""))
    assert 8 <= forked < 16, detail


@pytest.mark.parametrize("tier", ["bwrap", "unshare", "landlock"])
def test_without_root_the_supervisor_checks_the_clean_up(nobody_dir, tier):
    """Without a cgroup the supervisor still sees files a harness failed to delete (the inodes of
    the sandbox's own /tmp through /proc/<pid>/root, or the host scratch dir) and starts a fresh
    sandbox for the next solution."""
    if tier == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap not installed")
    empty = "import os\nos.mkdir('d')\nopen('e', 'w').close()\nprint(os.getppid())\n"
    (_, d1, _), (_, d2, _) = _run_as_nobody([empty, LOOK], nobody_dir, tier=tier, harness=lying_harness())
    harness1 = d1.split("got ", 1)[1].strip("'\"")
    harness2, files = d2.split("got ", 1)[1].strip("'\"").split(" ", 1)
    assert files == "['new']", d2
    if tier == "landlock":  # no pid namespace: the harness's pid tells the sandboxes apart
        assert harness1 != harness2, (d1, d2)
