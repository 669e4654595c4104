"""Isolation tiers, strongest first, and how to start the harness in each.

- ``bwrap``: bubblewrap with every namespace (user, pid, net, ipc, uts, mount, cgroup), a
  read-only view of /usr only, a private tmpfs /tmp as the working dir, no capabilities, an empty
  environment; launched as a dedicated non-root uid; the harness adds rlimits, seccomp, Landlock.
- ``unshare``: util-linux ``unshare`` (user, pid, net, ipc, uts, mount namespaces) as a dedicated
  uid; the file system is confined by Landlock to the system dirs and a private scratch dir.
- ``landlock``: no namespaces (e.g. inside a default Docker container): a dedicated uid, its own
  session, Landlock (files, TCP, signals) and seccomp (no sockets but AF_UNIX).
- ``none``: rlimits and a separate session only; refused unless ``unsafe`` is set.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import random
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TIERS = ("bwrap", "unshare", "landlock", "none")
SAFE_TIERS = TIERS[:-1]
NAMESPACES = {
    "bwrap": ("user", "pid", "net", "ipc", "uts", "mount", "cgroup"),
    "unshare": ("user", "pid", "net", "ipc", "uts", "mount"),
    "landlock": (),
    "none": (),
}
SLOT_UIDS = range(20000, 20000 + 1024)
SLOT_LOCKS = Path("/tmp/branchmerge-sandbox-slots")
_SYSTEM_READ = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/etc", "/dev/urandom", "/dev/zero"]
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
    confine: dict  # what the harness applies to itself
    popen: dict


def _bwrap_binds(py: Interpreter) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "localtime", "alternatives", "ssl/openssl.cnf"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for prefix in py.prefixes:
        if not prefix.startswith("/usr/") and prefix != "/usr":
            args += ["--ro-bind", prefix, prefix]
    return args


def launch(tier: str, py: Interpreter, uid: int | None, limits) -> Launch:
    """The command that starts the harness in ``tier`` (harness source appended by the caller)."""
    rlimits = {
        "RLIMIT_NPROC": int(limits.processes),
        "RLIMIT_FSIZE": int(limits.file_size_mb) << 20,
        "RLIMIT_NOFILE": int(limits.open_files),
        "RLIMIT_CORE": 0,
    }
    if uid is None:
        rlimits.pop("RLIMIT_NPROC")  # would count every process of the caller's own uid
    user = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    python = [py.path, "-I", "-S", "-c"]
    read = _SYSTEM_READ + list(py.prefixes) + list(py.site)
    if tier == "bwrap":
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--cap-drop", "ALL", "--clearenv", "--uid", "65534", "--gid", "65534",
                *_bwrap_binds(py), "--proc", "/proc", "--dev", "/dev",
                "--size", str(256 << 20), "--tmpfs", "/tmp", "--chdir", "/tmp"]  # fmt: skip
        for key, value in ENV.items():
            argv += ["--setenv", key, value]
        confine = {"landlock": True, "read_paths": read, "write_paths": ["/tmp", "/dev/null", "/dev/shm"],
                   "seccomp": True, "kill_all": True, "rlimits": rlimits}  # fmt: skip
        return Launch(argv + python, "/", None, confine, user)
    scratch = _scratch(uid)
    confine = {"landlock": tier != "none", "read_paths": read + [scratch], "write_paths": [scratch, "/dev/null"],
               "seccomp": tier != "none", "kill_all": uid is not None, "rlimits": rlimits}  # fmt: skip
    if tier == "unshare":
        argv = ["unshare", "--user", "--map-current-user", "--net", "--pid", "--fork", "--kill-child",
                "--mount", "--ipc", "--uts", "--mount-proc"]  # fmt: skip
        confine["kill_all"] = True
        return Launch(argv + python, scratch, scratch, confine, user)
    return Launch(python, scratch, scratch, confine, user)


def _scratch(uid: int | None) -> str:
    import tempfile

    path = tempfile.mkdtemp(prefix="branchmerge-sbx-")
    if uid is not None:
        os.chown(path, uid, uid)
    return path
