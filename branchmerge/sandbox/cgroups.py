"""Whole-solution limits from the kernel: one cgroup per sandboxed solution, so memory (every
process, and the shmem, memfd and tmpfs pages it creates), the process count and CPU time are
counted for the solution as a whole, not per process, and a memory-limit verdict comes from the
kernel's own OOM-kill counter.

cgroup v2 where its memory and pids controllers can be had (our own cgroup is the root of the
hierarchy, or its parent passes them on or lets us turn them on: root, a container whose
processes left its root cgroup, or a systemd user slice with ``Delegate=yes``); else cgroup v1
(memory, pids, cpuacct mounted separately, as on hybrid hosts). Our cgroups go in
``branchmerge-sandbox-<pid>`` beside (v2) or below (v1) our own, and ones left by a supervisor
that died are removed at the next start-up.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PREFIX = "branchmerge-sandbox-"
POOL_SIZE = 64  # idle cgroups kept for reuse (one per worker is what a batch needs)
_POOL: list = []  # of Group
_POOL_LOCK = threading.Lock()
V1_CONTROLLERS = {"memory": "memory", "pids": "pids", "cpu": "cpuacct"}
V2_CONTROLLERS = {"memory", "pids"}  # (CPU time: every v2 cgroup's cpu.stat has it)
# memory.stat sums per-CPU counters that the kernel folds in lazily (every 2 s, or once 64 pages
# per CPU have changed), so its figures may be this far off either way; the page counters behind
# memory.current and the peak are exact
STAT_LAG_BYTES = 2 * 64 * os.sysconf("SC_PAGE_SIZE") * (os.cpu_count() or 1)


@dataclass
class Hierarchy:
    """Where our session cgroups are created: one base dir per controller (v2: the same dir)."""

    version: int
    bases: dict[str, Path]
    sessions: itertools.count = field(default_factory=itertools.count)

    def describe(self) -> str:
        where = sorted({str(p) for p in self.bases.values()})
        kinds = "memory, pids, cpu" if "cpu" in self.bases or self.version == 2 else "memory, pids"
        return f"v{self.version} ({kinds}) under {', '.join(where)}"


# ---------------------------------------------------------------- finding a place we may use


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of every cgroup mount we can see."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller (or '' for v2) -> our cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _inside(mount_root: str, mount_point: str, path: str) -> Path | None:
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root + "/")):
        return None
    rel = path[len(mount_root) :] if mount_root != "/" else path
    return Path(mount_point + rel.rstrip("/")) if rel.strip("/") else Path(mount_point)


def _v1() -> Hierarchy | str:
    own, mounts, bases = _own_paths(), _mounts(), {}
    for key, controller in V1_CONTROLLERS.items():
        mount = next((m for m in mounts if m[2] == "cgroup" and controller in m[3]), None)
        if mount is None or controller not in own:
            continue
        path = _inside(mount[0], mount[1], own[controller])
        if path is not None and os.access(path, os.W_OK):
            bases[key] = path / f"{PREFIX}{os.getpid()}"
    if "memory" not in bases or "pids" not in bases:
        return "cgroup v1: no writable memory and pids hierarchies" if bases or _has_v1() else ""
    return Hierarchy(1, bases)


def _has_v1() -> bool:
    return any(m[2] == "cgroup" for m in _mounts())


def _v2() -> Hierarchy | str:
    mount = next((m for m in _mounts() if m[2] == "cgroup2"), None)
    own = _own_paths().get("")
    if mount is None or own is None:
        return "cgroup v2 is not mounted"
    here = _inside(mount[0], mount[1], own)
    if here is None:
        return "cgroup v2: our cgroup is outside the visible hierarchy"
    top = Path(mount[1])
    # our sandboxes' cgroups go below the root we are in (if it holds processes, only the real
    # root can pass controllers on), else beside our own cgroup: in a delegated parent, or one
    # with no process of its own
    parent = here if here == top else here.parent
    if _enable(parent) and os.access(parent, os.W_OK):
        return Hierarchy(2, dict.fromkeys(("memory", "pids", "cpu"), parent / f"{PREFIX}{os.getpid()}"))
    if not V2_CONTROLLERS <= set((here / "cgroup.controllers").read_text().split()):
        return f"cgroup v2: the memory and pids controllers are not available here ({here})"
    if here == top and not os.access(here / "cgroup.procs", os.W_OK):
        return f"cgroup v2: {here} is read-only to us (a container's cgroup mount is, unless it runs --privileged)"
    if here == top:
        return (
            f"cgroup v2: {here} is the root of a cgroup namespace (a container's) and holds processes, so it "
            "cannot pass memory and pids on; move every process out of it first, as docker:dind does "
            f"(mkdir {here}/init && xargs -rn1 < {here}/cgroup.procs > {here}/init/cgroup.procs)"
        )
    return (
        f"cgroup v2: {here} holds processes and its parent does not delegate memory and pids to us; "
        "run as root, or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes ...)"
    )


def _enable(parent: Path) -> bool:
    """Whether ``parent`` passes memory and pids on to its children, turning them on where we may
    (its controllers are ours to change, and it holds no process of its own or is the real root)."""
    try:
        if V2_CONTROLLERS <= set((parent / "cgroup.subtree_control").read_text().split()):
            return True
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in sorted(V2_CONTROLLERS)))
        return True
    except OSError:
        return False


@cache
def hierarchy() -> Hierarchy | None:
    """The place this process makes its sandboxes' cgroups, or None (see ``why_not``)."""
    found = _find()
    if isinstance(found, str):
        return None
    try:
        for base in set(found.bases.values()):
            _sweep_stale(base.parent)
            base.mkdir(exist_ok=True)
        if found.version == 2:
            (found.bases["memory"] / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    atexit.register(_remove_bases, found)
    return found


@cache
def _find() -> Hierarchy | str:
    try:
        v2 = _v2()
        if isinstance(v2, Hierarchy):
            return v2
        v1 = _v1()
        return v1 if isinstance(v1, Hierarchy) else (v1 or v2)
    except (OSError, ValueError) as exc:
        return f"cannot read the cgroup setup: {exc}"


def why_not() -> str:
    """Why there is no cgroup for the sandboxes, or ''."""
    if hierarchy() is not None:
        return ""
    found = _find()
    return found if isinstance(found, str) else "creating our cgroup failed (no write access?)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(parent: Path) -> None:
    for entry in parent.glob(PREFIX + "*"):
        pid = entry.name[len(PREFIX) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            for child in [c for c in entry.iterdir() if c.is_dir()] + [entry]:
                Group({"any": child}, 0).remove()


def _remove_bases(found: Hierarchy) -> None:
    with _POOL_LOCK:
        _POOL.clear()
    for base in set(found.bases.values()):
        for child in [c for c in base.iterdir() if c.is_dir()] if base.exists() else []:
            Group({"any": child}, found.version).remove()
        try:
            base.rmdir()
        except OSError:
            pass


# ---------------------------------------------------------------- one solution's cgroup


class Group:
    """One sandboxed solution's cgroup (one dir per v1 controller, one dir on v2).

    A cgroup whose solution is over (nothing left inside) goes back to a pool and serves the next
    solution with the same limits: moving the first process into a fresh memory cgroup costs the
    kernel ~8 ms (per solution, a quarter of the sandbox's start-up). Its counters (OOM kills,
    CPU time) are read relative to what they were when it was handed out."""

    def __init__(self, dirs: dict[str, Path], version: int, limits: tuple[int, int] = (0, 0)) -> None:
        self.dirs, self.version, self.limits = dirs, version, limits
        self._oom_base, self._cpu_base = 0, 0.0
        self._fds: dict[str, int] = {}
        self._members = [os.path.join(path, "cgroup.procs") for path in sorted(set(map(str, dirs.values())))]

    def _fd(self, controller: str, name: str, mode: int = os.O_RDONLY) -> int:
        """A control file, opened once: the counters are read after every test (a pread at 0 makes
        the kernel render them afresh), until the cgroup is removed."""
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.dirs[controller] / name, mode | os.O_CLOEXEC)
        return fd

    def _read(self, controller: str, name: str) -> str:
        return os.pread(self._fd(controller, name), 1 << 16, 0).decode()

    def start_peak(self) -> float | None:
        """Measure the peak of its memory afresh from now; the usage it starts from (MB), or None
        where the kernel keeps no peak that can be reset (cgroup v2 before Linux 6.12)."""
        try:  # v2 resets the peak for this open file only: the reads go through the same one
            os.pwrite(self._fd("memory", self._peak_file, os.O_RDWR), b"0" if self.version == 1 else b"reset", 0)
            return self.usage_mb()
        except OSError:
            return None

    def peak_mb(self) -> float | None:
        """The most memory charged to it since ``start_peak`` (MB)."""
        try:
            return int(os.pread(self._fd("memory", self._peak_file, os.O_RDWR), 64, 0)) / (1 << 20)
        except (OSError, ValueError):
            return None

    @property
    def _peak_file(self) -> str:
        return "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"

    @classmethod
    def create(cls, memory_bytes: int, pids: int) -> Group:
        found = hierarchy()
        if found is None:
            raise OSError(why_not())
        with _POOL_LOCK:
            group = next((g for g in _POOL if g.limits == (memory_bytes, pids)), None)
            if group is not None:
                _POOL.remove(group)
        if group is None:
            name = f"s{next(found.sessions)}"
            dirs = {key: base / name for key, base in found.bases.items()}
            group = cls(dirs, found.version, (memory_bytes, pids))
            try:
                for path in set(dirs.values()):
                    path.mkdir()
                if found.version == 2:
                    _write(dirs["memory"] / "memory.max", memory_bytes)
                    _write(dirs["memory"] / "memory.swap.max", 0, optional=True)
                    _write(dirs["pids"] / "pids.max", pids)
                else:
                    _write(dirs["memory"] / "memory.limit_in_bytes", memory_bytes)
                    _write(dirs["memory"] / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
                    _write(dirs["pids"] / "pids.max", pids)
            except OSError:
                group.remove()
                raise
        group._oom_base, group._cpu_base = group._raw_oom_kills(), group._raw_cpu_s()
        return group

    def release(self) -> None:
        """The solution is over: kill what is left; an empty cgroup goes back to the pool (else it
        is removed)."""
        self.kill()
        if self._empty():
            if self.version == 1:
                _write(self.dirs["memory"] / "memory.max_usage_in_bytes", 0, optional=True)
            with _POOL_LOCK:
                if len(_POOL) < POOL_SIZE:
                    _POOL.append(self)
                    return
        self.remove()

    def _empty(self) -> bool:
        try:
            return not any(_pids(procs) for procs in self._members)
        except (OSError, ValueError):
            return False

    def members(self) -> frozenset[int]:
        """The processes in it now (every controller's list; empty when unreadable)."""
        try:
            return frozenset(pid for procs in self._members for pid in _pids(procs))
        except (OSError, ValueError):
            return frozenset()

    def attach(self, pid: int) -> None:
        for procs in self._members:
            _write(procs, pid)

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills in this cgroup since it was handed out."""
        return self._raw_oom_kills() - self._oom_base

    def _raw_oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in self._read("memory", name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def cpu_s(self) -> float:
        """CPU time of everything that ran in this cgroup since it was handed out (0.0 when not
        accounted)."""
        return max(self._raw_cpu_s() - self._cpu_base, 0.0)

    def _raw_cpu_s(self) -> float:
        try:
            if self.version == 2:
                for line in self._read("cpu", "cpu.stat").splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
            elif "cpu" in self.dirs:
                return int(self._read("cpu", "cpuacct.usage")) / 1e9
        except (OSError, ValueError, IndexError):
            pass
        return 0.0

    def usage_mb(self) -> float:
        """All the memory charged to it now (processes, files, page cache); inf when unreadable."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int(self._read("memory", name)) / (1 << 20)
        except (OSError, ValueError):
            return float("inf")

    def shmem_mb(self) -> float:
        """Its tmpfs files, memfds and shared memory: what stays charged to it between tests is
        the files it wrote (its test processes, and their memfds, are gone by then). Give or take
        ``STAT_LAG_BYTES``."""
        return self.shmem_bytes() / (1 << 20)

    def shmem_bytes(self) -> int:
        try:
            for line in self._read("memory", "memory.stat").splitlines():
                if line.startswith("shmem "):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def kill(self, rounds: int = 50) -> None:
        """SIGKILL everything inside (cgroup.kill on v2; else each member, by pidfd, after checking
        that the pid is still a member, so a reused pid is never hit)."""
        for procs in self._members:
            path = Path(procs).parent
            if self.version != 1 and (path / "cgroup.kill").exists():  # v2 from Linux 5.14
                try:
                    _write(path / "cgroup.kill", 1)
                    continue
                except OSError:
                    pass
            for _ in range(rounds):
                try:
                    pids = _pids(procs)
                except (OSError, ValueError):
                    break
                if not pids:
                    break
                for pid in pids:
                    _kill_member(pid, path)
                time.sleep(0.001)

    def remove(self) -> None:
        self.kill()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for path in set(self.dirs.values()):
            for attempt in range(200):  # a second at most; what is left is swept at the next start-up
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt % 20 == 19:
                        self.kill(rounds=1)
                    time.sleep(0.005)


def _pids(procs: str) -> list[int]:
    with open(procs, "rb") as f:
        return [int(p) for p in f.read().split()]


def _kill_member(pid: int, path: Path) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        mount_rel = "/" + "/".join(path.parts[-2:])
        if mount_rel in cgroups:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write(path: str | Path, value: object, optional: bool = False) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if optional:
            return
        raise
    try:
        os.write(fd, str(value).encode())
    except OSError:
        if not optional:
            raise
    finally:
        os.close(fd)
