"""Isolation tiers, strongest first, and how to start the harness in each.

- ``bwrap``: bubblewrap with every namespace (user, pid, net, ipc, uts, mount, cgroup), a root of
  its own (read-only binds of what the interpreter and compiler need, size-capped tmpfs /tmp and
  /dev/shm, its own /proc), no capabilities, an empty environment.
- ``unshare``: util-linux ``unshare`` (user, pid, net, ipc, uts, mount, cgroup namespaces); the
  harness builds the same root itself and pivots into it (``confine.build_root``), then drops
  every capability.
- ``landlock``: no namespaces (e.g. inside a default Docker container): Landlock (files, TCP,
  signals, abstract sockets) and a stricter seccomp filter (no socket addressing, no SysV IPC,
  no inotify) over the host's own file system, in a scratch dir of its own.
- ``none``: rlimits and a separate session only; refused unless ``unsafe`` is set.

Every tier: a dedicated non-root uid per sandbox when we are root, one cgroup per solution when
the host lets us make one (``cgroups``), rlimits, seccomp and Landlock in each test's child.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from branchmerge.sandbox.results import TIERS

SAFE_TIERS = TIERS[:-1]
NAMESPACES = {
    "bwrap": ("user", "pid", "net", "ipc", "uts", "mount", "cgroup"),
    "unshare": ("user", "pid", "net", "ipc", "uts", "mount", "cgroup"),
    "landlock": (),
    "none": (),
}
SLOT_UIDS = range(20000, 20000 + 1024)
SLOT_LOCKS = Path("/tmp/branchmerge-sandbox-slots")
_ETC = ("ld.so.cache", "localtime", "alternatives", "ssl/openssl.cnf")
_DEVICES_READ = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
HARNESS_MB = 64  # the cgroup's memory beyond the limit: the harness itself, its pipes and memfds
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip

_INFO = r"""
import json, sys, site
exports = {}
for name in %r:
    m = __import__(name)
    exports[name] = list(getattr(m, "__all__", None) or [n for n in dir(m) if not n.startswith("_")])
print(json.dumps({"version": sys.version.split()[0], "prefix": sys.prefix, "exec_prefix": sys.exec_prefix,
                  "site": [p for p in site.getsitepackages() if __import__("os").path.isdir(p)],
                  "exports": exports}))
"""


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    prefixes: tuple[str, ...]  # what must be visible (read-only) for it to run
    site: tuple[str, ...]
    exports: dict = field(hash=False, compare=False)


def _world_usable(path: str) -> bool:
    """Can an unprivileged uid reach and execute ``path`` (every parent dir o+x, the file o+x)?"""
    p = Path(path)
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


def _candidates(override: str | None) -> list[str]:
    if override:
        return [override]
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [str(base)] if base.exists() else []
    for directory in ("/usr/local/bin", "/usr/bin"):
        path = shutil.which("python3", path=directory)
        if path:
            found.append(os.path.realpath(path))
    return found


@cache
def interpreter(override: str | None = None) -> Interpreter | None:
    """The Python that runs inside the sandbox: the caller's own base interpreter when a non-root
    uid can use it, else the system's python3 (the sandbox uid cannot enter /root)."""
    from branchmerge.sandbox.harness import STAR_ORDER

    dedicated = os.geteuid() == 0
    for path in _candidates(override):
        if dedicated and not _world_usable(path):
            continue
        try:
            out = subprocess.run(
                [path, "-I", "-S", "-c", _INFO % (STAR_ORDER,)],
                capture_output=True, text=True, timeout=30, env=ENV, check=True,
            ).stdout  # fmt: skip
            info = json.loads(out)
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
        prefixes = tuple(sorted({os.path.realpath(info["prefix"]), os.path.realpath(info["exec_prefix"])}))
        return Interpreter(path, info["version"], prefixes, tuple(info["site"]), info["exports"])
    return None


# ---------------------------------------------------------------- dedicated uids


_ROTATION = itertools.count(random.randrange(len(SLOT_UIDS)))


class Slot:
    """A uid no other sandbox (in this or another process) uses right now, held by a file lock;
    ``uid`` is None when we are not root and so cannot switch users."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self._fd: int | None = None

    def __enter__(self) -> Slot:
        if os.geteuid() != 0:
            return self
        SLOT_LOCKS.mkdir(mode=0o700, exist_ok=True)
        # rotate through the uids so that a uid whose killed processes the system has not reaped
        # yet (zombies still count against RLIMIT_NPROC) is not handed out again at once
        start = next(_ROTATION)
        for i in range(len(SLOT_UIDS)):
            uid = SLOT_UIDS[(start + i) % len(SLOT_UIDS)]
            fd = os.open(SLOT_LOCKS / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return self
        raise RuntimeError("all sandbox uids are in use")

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _processes(uids: range) -> list[tuple[int, int, bytes, int]]:
    """(pid, uid, state, parent pid) of every process whose uid is in ``uids``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            if uid not in uids:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            found.append((int(entry.name), uid, fields[0], int(fields[1])))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _live_pids(uid: int) -> list[int]:
    return [pid for pid, _, state, _ in _processes(range(uid, uid + 1)) if state not in (b"Z", b"X")]


def adopt_orphans() -> None:
    """Make this process the reaper of the sandboxes' orphans (PR_SET_CHILD_SUBREAPER), so that
    killed sandbox processes do not linger as zombies under a PID 1 that never reaps (a bare
    container), where they would keep counting against the next sandbox's RLIMIT_NPROC."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)


def kill_uid(uid: int, rounds: int = 50) -> int:
    """SIGKILL every live process of ``uid`` (a fork bomb may still be forking: repeat until none,
    at most ``rounds`` times), and reap every sandbox zombie orphaned to us by now (of any slot:
    one that died after its own sandbox's sweep is collected by the next one)."""
    killed, me = 0, os.getpid()
    for round_ in range(rounds + 1):
        procs = _processes(SLOT_UIDS)
        for pid, _, state, parent in procs:
            if parent == me and state == b"Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        live = [pid for pid, owner, state, _ in procs if owner == uid and state not in (b"Z", b"X")]
        if not live or round_ == rounds:
            break
        for pid in live:
            try:
                os.kill(pid, 9)
                killed += 1
            except OSError:
                pass
    return killed


# ---------------------------------------------------------------- launching


@dataclass
class Launch:
    argv: list[str]
    cwd: str
    scratch: str | None  # host dir to remove afterwards
    confine: dict  # what the harness applies to itself and its children
    popen: dict
    env: dict


@cache
def layout(py: Interpreter) -> tuple[tuple[str, ...], ...]:
    """What a namespaced sandbox's own root holds, one list for bwrap and for ``build_root`` (read
    once per supervisor):
    ("ro", path) binds read-only (must exist), ("ro-try", path) if it exists, ("symlink",
    target, path). Only /usr, the /lib* and /bin links, four files of /etc and the
    interpreter's prefix: no /home, /root, /run, /var, /tmp or project dir of the host."""
    ops: list[tuple[str, ...]] = [("ro", "/usr")]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            ops.append(("symlink", os.readlink(path), str(path)))
        elif path.is_dir():
            ops.append(("ro", str(path)))
    ops += [("ro-try", f"/etc/{name}") for name in _ETC]
    bound = ["/usr"]
    for path in py.prefixes + py.site:
        if not any(path == b or path.startswith(b + "/") for b in bound):
            ops.append(("ro", path))
            bound.append(path)
    return tuple(ops)


def _bwrap_args(ops: tuple[tuple[str, ...], ...]) -> list[str]:
    flag = {"ro": "--ro-bind", "ro-try": "--ro-bind-try"}
    args = []
    for op in ops:
        args += ["--symlink", op[1], op[2]] if op[0] == "symlink" else [flag[op[0]], op[1], op[1]]
    return args


def memory_backstop(limits) -> int:
    """RLIMIT_AS per process where no cgroup counts memory: twice the limit plus 256 MiB, so the
    verdict can come from the peak RSS the kernel reports (over the limit: memory_limit) rather
    than from an allocation failure the solution could fake."""
    return (2 * int(limits.memory_mb) + 256) << 20


def launch(tier: str, py: Interpreter, uid: int | None, limits, cgroup: bool) -> Launch:
    """The command that starts the harness in ``tier`` (harness source appended by the caller)."""
    rlimits = {
        "RLIMIT_NPROC": int(limits.processes),
        "RLIMIT_FSIZE": int(limits.file_size_mb) << 20,
        "RLIMIT_NOFILE": int(limits.open_files),
        "RLIMIT_CORE": 0,
    }
    if uid is None and not ("user" in NAMESPACES[tier] and nproc_per_userns()):
        rlimits.pop("RLIMIT_NPROC")  # would count every process of the caller's own uid
    if not cgroup:
        rlimits["RLIMIT_AS"] = memory_backstop(limits)
    user, python = _as_user(uid), [py.path, "-I", "-S", "-c"]
    ops = layout(py)
    read = [op[1] for op in ops if op[0] != "symlink"] + _DEVICES_READ
    disk = int(limits.disk_mb)
    confine = {"landlock": tier != "none", "read_paths": read, "write_paths": ["/tmp", "/dev/shm", "/dev/null"],
               "seccomp": tier != "none", "host_visible": tier in ("landlock", "none"), "kill_all": True,
               "rlimits": rlimits, "root": None}  # fmt: skip
    env = dict(ENV, TMPDIR="/tmp")
    if tier == "bwrap":
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--cap-drop", "ALL", "--clearenv", "--uid", "65534", "--gid", "65534",
                *_bwrap_args(ops), "--proc", "/proc", "--dev", "/dev",
                "--size", str(disk << 20), "--tmpfs", "/dev/shm",
                "--size", str(disk << 20), "--tmpfs", "/tmp", "--chdir", "/tmp"]  # fmt: skip
        for key, value in env.items():
            argv += ["--setenv", key, value]
        return Launch(user[0] + argv + python, "/", None, confine, user[1], {})
    if tier == "unshare":
        argv = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child",
                "--mount", "--ipc", "--uts", "--cgroup"]  # fmt: skip
        confine["root"] = {"at": "/tmp", "ops": ops, "tmp_mb": disk}
        return Launch(user[0] + argv + python, "/", None, confine, user[1], env)
    scratch = _scratch(uid, in_memory=cgroup)
    confine.update(read_paths=read + [scratch], write_paths=[scratch, "/dev/null"], kill_all=uid is not None)
    return Launch(user[0] + python, scratch, scratch, confine, user[1], dict(ENV, TMPDIR=scratch))


@cache
def nproc_per_userns() -> bool:
    """Whether RLIMIT_NPROC counts a uid's processes per user namespace (Linux 5.14, "ucounts"):
    then, set inside a sandbox's own user namespace, it counts the sandbox's processes only, not
    every process of the caller's uid."""
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return release is not None and (int(release[1]), int(release[2])) >= (5, 14)


def _as_user(uid: int | None) -> tuple[list[str], dict]:
    """How the sandbox's first process becomes ``uid``: (argv prefix, Popen arguments). With
    util-linux's setpriv (it ships with unshare) the supervisor starts it by vfork; Popen's own
    ``user=`` makes it fork, copying the supervisor's page tables per sandbox (12 ms of CPU at
    1 GB of RSS, as an evaluation process with a model loaded has)."""
    if uid is None:
        return [], {}
    setpriv = _setpriv()
    if setpriv:
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"], {}
    return [], {"user": uid, "group": uid, "extra_groups": []}


@cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def _scratch(uid: int | None, in_memory: bool) -> str:
    """The working dir of a namespace-free sandbox. With a memory cgroup it is on /dev/shm, so what
    the solution writes there is charged to its memory limit (a total cap no rlimit gives)."""
    import tempfile

    base = "/dev/shm" if in_memory and os.access("/dev/shm", os.W_OK | os.X_OK) else None
    path = tempfile.mkdtemp(prefix="branchmerge-sbx-", dir=base)
    if uid is not None:
        os.chown(path, uid, uid)
    return path
