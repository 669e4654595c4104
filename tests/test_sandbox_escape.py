"""Escapes: hostile programs that try to reach the host through ``branchmerge sandbox run`` in every
safe tier (forced explicitly): its files, sockets, IPC objects, processes, /proc, kernel
facilities. Each asserts what the program saw and, on the host, that nothing was reached and
nothing was left (``host`` fixture)."""

from __future__ import annotations

import ctypes
import os
import platform
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

import branchmerge
from branchmerge.sandbox import Limits, run_many
from branchmerge.sandbox.doctor import COVERAGE
from tests.sandbox_helpers import (
    SAFE_PARAMS,
    cli_run,
    host_fixture,  # noqa: F401  (registers the host fixture)
    needs_root,
)

pytestmark = needs_root
PROJECT = Path(branchmerge.__file__).resolve().parents[1]
NAMESPACED = ("bwrap", "unshare")


def run_in(tier: str, tmp_path: Path, code: str, expected: str, tests: dict | None = None) -> dict:
    tests = tests or {"inputs": [""], "outputs": [expected]}
    rc, result = cli_run(tmp_path, code, tests, "--tier", tier, "--timeout-s", "2")
    assert rc == 0 and result["tier"] == tier, result
    assert result["verdict"] == "accepted", (result["tests"], result["stderr"])
    return result


@pytest.fixture
def open_dir():
    """A world-writable host dir: only the sandbox, not file permissions, keeps a program out."""
    path = Path(tempfile.mkdtemp(prefix="branchmerge-host-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_write_outside_its_dir(tier, tmp_path, host, open_dir):
    victims = [open_dir / "escape.txt", Path("/tmp/branchmerge-escape-test.txt"), Path("/dev/shm/escape.txt"),
               PROJECT / "escape.txt"]  # fmt: skip
    code = (
        f"for path in {[str(v) for v in victims]!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n"
        "    except OSError:\n        pass\n"  # in bwrap/unshare /tmp and /dev/shm are private: writes land there
        "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n"
    )
    run_in(tier, tmp_path, code, "ok")  # its own working dir is writable
    assert not any(v.exists() for v in victims)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_secrets_shadow_and_callers_files(tier, tmp_path, host, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_s3cr3t_value")
    code = (
        "import os\nout = []\n"
        f"for path in ['/etc/shadow', {str(Path(branchmerge.__file__))!r}, '/root/.bashrc', '/proc/1/environ',\n"
        f"             '/proc/{os.getpid()}/environ', '/etc/passwd', '/etc/hostname']:\n"
        "    try:\n        out.append(open(path).read())\n"
        "    except OSError:\n        out.append('denied')\n"
        "print(' '.join(o if o == 'denied' else 'read' for o in out))\n"
        "print('leak' if any('s3cr3t' in o for o in out) or any('s3cr3t' in v for v in os.environ.values()) "
        "else 'clean')\n"
    )
    result = run_in(tier, tmp_path, code, " ".join(["denied"] * 7) + "\nclean")
    assert "s3cr3t" not in str(result)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_host_paths_are_not_visible(tier, tmp_path, host):
    """Class 11: stat, readlink, listing and inotify on host paths (the project dir, /tmp)."""
    marker = Path(tempfile.mkstemp(prefix="branchmerge-marker-")[1])
    link = Path(tempfile.gettempdir()) / f"branchmerge-link-{secrets.token_hex(4)}"
    link.symlink_to("/etc/hostname")
    marker.chmod(0o644)
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
        f"for label, probe in [('stat', lambda: os.stat({str(marker)!r})),\n"
        f"                     ('project', lambda: os.stat({str(PROJECT)!r})),\n"
        f"                     ('readlink', lambda: os.readlink({str(link)!r})),\n"
        f"                     ('read', lambda: open({str(marker)!r}).read()),\n"
        f"                     ('list', lambda: [n for n in os.listdir('/tmp') if 'branchmerge-marker' in n][0]),\n"
        f"                     ('list_project', lambda: os.listdir({str(PROJECT)!r})),\n"
        "                     ('inotify', lambda: 1 / (libc.inotify_init1(0) >= 0))]:\n"
        "    try:\n        probe()\n        out.append(label + ' leaks')\n"
        "    except (OSError, IndexError, ZeroDivisionError):\n        out.append(label + ' hidden')\n"
        "print(' '.join(out))\n"
    )
    try:
        if tier in NAMESPACED:
            expected = "stat hidden project hidden readlink hidden read hidden list hidden list_project hidden inotify hidden"
        else:  # Landlock checks opens, not lookups: metadata of traversable paths stays visible (doctor says so)
            expected = "stat leaks project leaks readlink leaks read hidden list hidden list_project hidden inotify hidden"
            assert any("stat, readlink" in line for line in COVERAGE[tier]["does_not"])
        run_in(tier, tmp_path, code, expected)
    finally:
        marker.unlink()
        link.unlink()


# ---------------------------------------------------------------- class 1: UNIX sockets of the host


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_host_unix_sockets_are_unreachable(tier, tmp_path, host, open_dir):
    stream_path, dgram_path = str(open_dir / "stream.sock"), str(open_dir / "dgram.sock")
    abstract = f"\0branchmerge-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as abst:  # fmt: skip
        stream.bind(stream_path)
        dgram.bind(dgram_path)
        abst.bind(abstract)
        for s in (stream, abst):
            s.listen(5)
            s.setblocking(False)
        dgram.setblocking(False)
        os.chmod(stream_path, 0o777)
        os.chmod(dgram_path, 0o777)
        code = (
            "import socket\nU, D, S = socket.AF_UNIX, socket.SOCK_DGRAM, socket.SOCK_STREAM\nout = []\n"
            "def stream():\n    s = socket.socket(U, S)\n    s.settimeout(1)\n    s.connect(STREAM)\n"
            "def dgram():\n    socket.socket(U, D).sendto(b'hi', DGRAM)\n"
            "def pair_sendto():\n    socket.socketpair(U, D)[0].sendto(b'hi', DGRAM)\n"
            "def pair_connect():\n    a = socket.socketpair(U, D)[0]\n    a.connect(DGRAM)\n    a.send(b'hi')\n"
            "def pair_sendmsg():\n    socket.socketpair(U, D)[0].sendmsg([b'hi'], [], 0, DGRAM)\n"
            "def abstract():\n    s = socket.socket(U, S)\n    s.settimeout(1)\n    s.connect(ABSTRACT)\n"
            "for f in (stream, dgram, pair_sendto, pair_connect, pair_sendmsg, abstract):\n"
            "    try:\n        f()\n        out.append(f.__name__ + ' reached')\n"
            "    except OSError:\n        out.append(f.__name__ + ' blocked')\n"
            "a, b = socket.socketpair()\na.send(b'own pair works')\nout.append(b.recv(64).decode())\n"
            "print(' '.join(out))\n"
        )
        code = f"STREAM, DGRAM, ABSTRACT = {stream_path!r}, {dgram_path!r}, {abstract!r}\n" + code
        names = ["stream", "dgram", "pair_sendto", "pair_connect", "pair_sendmsg", "abstract"]
        run_in(tier, tmp_path, code, " ".join(f"{n} blocked" for n in names) + " own pair works")
        for s, what in ((stream, "accept"), (abst, "accept"), (dgram, "recv")):
            with pytest.raises(BlockingIOError):
                s.accept() if what == "accept" else s.recv(16)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_connect_to_a_local_listener(tier, tmp_path, host):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        code = (
            "import socket\nresults = []\n"
            "for family in (socket.AF_INET, socket.AF_INET6):\n"
            "    try:\n        s = socket.socket(family)\n        s.settimeout(0.5)\n"
            f"        s.connect(('127.0.0.1', {port}) if family == socket.AF_INET else ('::1', {port}))\n"
            "        results.append('connected')\n"
            "    except OSError:\n        results.append('blocked')\n"
            "print(' '.join(results))\n"
        )
        run_in(tier, tmp_path, code, "blocked blocked")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever got through


# ---------------------------------------------------------------- class 2: SysV IPC of the host


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmdt.argtypes = [ctypes.c_void_p]
    return libc


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_host_sysv_ipc_is_unreachable_and_none_is_left(tier, tmp_path, host):
    libc, key = _libc(), 0x42000000 + secrets.randbelow(1 << 20)
    shm = libc.shmget(key, 4096, 0o1000 | 0o666)  # IPC_CREAT, world read-write
    assert shm >= 0
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, b"host data", 9)
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\nout = []\n"
        f"sid = libc.shmget({key}, 0, 0)\n"
        "if sid < 0:\n    out.append('no-shm')\nelse:\n    a = libc.shmat(sid, None, 0)\n"
        "    if a in (None, 2 ** 64 - 1):\n        out.append('no-attach')\n"
        "    else:\n        ctypes.memmove(a, b'PWNED', 5)\n        out.append('overwrote')\n"
        "for name, make in [('shm', lambda: libc.shmget(0, 4096, 0o1600)), ('msg', lambda: libc.msgget(0, 0o1600)),\n"
        "                   ('sem', lambda: libc.semget(0, 1, 0o1600)), ('mq', lambda: libc.syscall(SYS_MQ, b'/bm', 0o100 | 2, 0o600, None))]:\n"
        "    out.append(name + (' made' if make() >= 0 else ' refused'))\n"
        "print(' '.join(out))\n"
    )
    code = f"SYS_MQ = {240 if platform.machine() == 'x86_64' else 180}\n" + code
    try:
        run_in(tier, tmp_path, code, "no-shm shm refused msg refused sem refused mq refused")
        assert ctypes.string_at(addr, 9) == b"host data"
    finally:
        libc.shmdt(ctypes.c_void_p(addr))
        libc.shmctl(shm, 0, None)  # IPC_RMID


# ---------------------------------------------------------------- class 5: what clean-up must survive


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_deep_trees_symlinks_and_locked_dirs_are_cleaned_up(tier, tmp_path, host, open_dir):
    keep = open_dir / "keep.txt"
    keep.write_text("host file")
    code = (
        "import os\nbase = os.getcwd()\n"
        "for depth in (1500, 5000):\n    os.chdir(base)\n    os.mkdir(f'deep{depth}')\n    os.chdir(f'deep{depth}')\n"
        "    for i in range(depth):\n        os.mkdir('d')\n        os.chdir('d')\n"
        "    open('leaf', 'w').write('x')\n"
        "os.chdir(base)\n"
        f"for i, target in enumerate(['/', {str(open_dir)!r}, {str(keep)!r}, {str(PROJECT)!r}]):\n"
        "    os.symlink(target, f'link{i}')\n"
        "os.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\nos.chmod('locked/inner', 0)\n"
        "os.chmod('locked', 0o500)\nos.mkfifo('fifo')\nprint('made')\n"
    )
    run_in(tier, tmp_path, code, "made")
    assert keep.read_text() == "host file" and (PROJECT / "pyproject.toml").exists()


def test_remove_tree_needs_no_recursion(tmp_path):
    """The clean-up itself, on a tree far deeper than the interpreter's recursion limit."""
    from branchmerge.sandbox.confine import remove_tree

    root = tmp_path / "scratch"
    root.mkdir()
    os.chdir(root)
    try:
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
        os.symlink(str(PROJECT), "project")
    finally:
        os.chdir(tmp_path)
    remove_tree(str(root))
    assert not root.exists() and PROJECT.exists()


# ---------------------------------------------------------------- processes, kernel facilities, fds


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_host_processes_are_out_of_reach(tier, tmp_path, host):
    victims = [subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"], user=65534, group=65534)]
    try:
        code = (
            "import os, signal\nout = []\n"
            f"for pid in {[v.pid for v in victims] + [os.getpid()]!r}:\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n        out.append('killed')\n"
            "    except OSError:\n        out.append('refused')\n"
            "print(' '.join(out))\n"
        )
        run_in(tier, tmp_path, code, "refused refused refused")
        assert all(v.poll() is None for v in victims)
    finally:
        for v in victims:
            v.kill()
            v.wait()


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_ptrace_keyrings_privileges(tier, tmp_path, host):
    keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
        "out.append('traceme ' + ('ok' if libc.ptrace(0, 0, None, None) == 0 else 'refused'))\n"
        "out.append('attach ' + ('ok' if libc.ptrace(16, os.getppid(), None, None) == 0 else 'refused'))\n"
        f"out.append('keyring ' + ('ok' if libc.syscall({keyctl}, 0, -3, 0) >= 0 else 'refused'))\n"
        "out.append('nnp ' + str(libc.prctl(39, 0, 0, 0, 0)))\n"
        "class H(ctypes.Structure):\n    _fields_ = [('v', ctypes.c_uint32), ('pid', ctypes.c_int)]\n"
        "data = (ctypes.c_uint32 * 6)()\nlibc.capget(ctypes.byref(H(0x20080522, 0)), data)\n"
        "out.append('caps ' + str(sum(data)))\n"
        "try:\n    os.setuid(0)\n    out.append('root')\nexcept OSError:\n    out.append('no-root')\n"
        "out.append('userns' if libc.unshare(0x10000000) == 0 else 'no-userns')\n"
        "print(' '.join(out))\n"
    )
    uid0 = tier == "unshare"  # uid 0 of its own user namespace, with no capability left
    run_in(tier, tmp_path, code, "traceme refused attach refused keyring refused nnp 1 caps 0 "
           + ("root" if uid0 else "no-root") + " no-userns")  # fmt: skip


def test_the_uid_is_dropped_by_setpriv_or_by_popen(monkeypatch):
    """With setpriv the sandbox's first process drops to its uid itself (so the supervisor can
    vfork it); without, Popen does it (and forks)."""
    from branchmerge.sandbox import tiers

    prefix, popen = tiers._as_user(60123)
    if tiers._setpriv():
        assert prefix[0].endswith("setpriv") and "--reuid=60123" in prefix and "--clear-groups" in prefix and popen == {}
    monkeypatch.setattr(tiers, "_setpriv", lambda: None)
    assert tiers._as_user(60123) == ([], {"user": 60123, "group": 60123, "extra_groups": []})
    assert tiers._as_user(None) == ([], {})


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_no_supervisor_fd_leaks_into_a_solution(tier, host):
    code = (
        "import os\nfds = []\nfor fd in range(4096):\n    try:\n        os.fstat(fd)\n        fds.append(fd)\n"
        "    except OSError:\n        pass\nprint(*fds)\n"
    )
    keep = [open(os.devnull) for _ in range(20)]  # the supervisor holds plenty of fds of its own
    try:
        jobs = [(code, {"inputs": [""], "outputs": ["0 1 2"]})] * 4
        jobs += [("import os\ndef f():\n    return sorted(fd for fd in range(4096) if _open(fd))\n"
                  "def _open(fd):\n    try:\n        os.fstat(fd)\n        return True\n    except OSError:\n"
                  "        return False\n", {"inputs": [[]], "outputs": [[0, 1, 2, 3]], "fn_name": "f"})]
        results = run_many(jobs, Limits(timeout_s=2, tier=tier), workers=2)
        assert [r.verdict for r in results] == ["accepted"] * 5, [(r.tier, r.tests) for r in results]
    finally:
        for f in keep:
            f.close()


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_sys_and_cgroup_files_are_out_of_reach(tier, tmp_path, host):
    code = (
        "import os\nout = []\n"
        "for path in ['/sys/fs/cgroup', '/sys/class/net', '/proc/sys/kernel/hostname']:\n"
        "    try:\n        os.listdir(path) if not path.startswith('/proc') else open(path, 'w').write('x')\n"
        "        out.append('open')\n"
        "    except OSError:\n        out.append('closed')\n"
        "print(' '.join(out))\n"
    )
    run_in(tier, tmp_path, code, "closed closed closed")
