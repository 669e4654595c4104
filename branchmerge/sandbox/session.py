"""One sandboxed harness process: started, fed solutions one after another, and torn down.

A session is started in two steps so the expensive part can happen before any solution is known
(``warm``): ``Session.start`` takes a uid, a cgroup, starts the tier's sandbox held at a gate
until it is inside the cgroup, hands it the harness (compiled once per interpreter, not parsed
again by every sandbox) and the batch's settings, on which the harness confines itself and waits;
``Session.begin`` then sends a solution's code. Nothing untrusted runs before ``begin``, and the
harness is fully confined before it reads a byte of it.

``Session.recycle`` readies it for the next solution: the harness kills whatever the last one
left running and deletes every file it left, so the next one finds what a fresh sandbox has, for
a fraction of a fresh sandbox's cost (~20 ms of CPU: interpreter and harness start-up, bwrap,
setpriv, namespaces). Only a sandbox whose every exchange went as the protocol says, whose
harness killed every process the last solution left (it is their subreaper, so they are all
its descendants; a pid namespace or a uid of its own lets it kill them all at once too), and
that no OOM kill touched is recycled, at most ``REUSE_MAX`` times; any other is closed.

The harness's word is then checked from outside (``Session.residue``): the kernel's list of the
processes in its cgroup must be the one it had when the first solution was ready to run, and what
a fresh sandbox has must be back: no tmpfs page charged to the cgroup, one inode (the root) on
each of its own ``/tmp`` and ``/dev/shm`` (seen through ``/proc/<pid>/root``), or an empty host
scratch dir. A harness bug that left a process or a file behind closes the sandbox instead of
reaching the next solution.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import struct
import subprocess
import tempfile
import threading
import time
from functools import cache
from pathlib import Path

from branchmerge.sandbox import cgroups
from branchmerge.sandbox.confine import remove_tree
from branchmerge.sandbox.harness import CLEAR_FIELDS, READY_FIELDS, REPLY_FIELDS
from branchmerge.sandbox.results import Limits
from branchmerge.sandbox.tiers import (
    ENV,
    HARNESS_MB,
    NAMESPACES,
    SAFE_TIERS,
    Interpreter,
    Slot,
    adopt_orphans,
    kill_uid,
    launch,
    memory_backstop,
)

_HERE = Path(__file__).parent
HARNESS = (_HERE / "confine.py").read_text() + "\n" + (_HERE / "harness.py").read_text()
EXCERPT = 2000
# solutions one sandbox serves before a fresh one replaces it: bounds whatever a long-lived sandbox
# might accumulate that its clean-up does not know of (it costs one start-up in 50)
REUSE_MAX = 50
CLEAR_S = 5.0  # the harness clears up after a solution within this, or its sandbox is closed instead
# holds the sandbox back until the supervisor has put it into its cgroup, so nothing it forks
# (bwrap's and unshare's own processes included) starts outside
GATE = ["/bin/sh", "-c", 'read -r _ && exec "$@"', "sh"]
# what ``python -c`` runs in the sandbox: read the harness's code object (length-prefixed marshal,
# made by this same interpreter) from the protocol pipe and run it as __main__; with the cyclic
# garbage collector off (see ``harness.main``) from the first allocation on
BOOT = (
    "import gc, marshal, os\ngc.disable()\nn = int.from_bytes(os.read(0, 4), 'big')\nb = b''\n"
    "while len(b) < n:\n    c = os.read(0, n - len(b))\n    if not c:\n        raise SystemExit(1)\n    b += c\n"
    "exec(marshal.loads(b))\n"
)
_COMPILE = "import marshal, sys\nsys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(), '<harness>', 'exec')))\n"


@cache
def compiled_harness(python: str, source: str) -> bytes | None:
    """The harness as the sandbox's own interpreter compiles it (marshal is version-specific, so
    the interpreter that will load it makes it). Parsing the harness costs each sandbox ~7 ms of
    CPU; this is done once per supervisor. None if it fails (the source is sent then)."""
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", _COMPILE], input=source.encode(), capture_output=True, timeout=60, env=ENV,
            check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def settings(limits: Limits, language: str, py: Interpreter, confine: dict, rlimit_as: int | None) -> dict:
    """The harness's first message: everything it needs before any solution (the batch's limits
    and its confinement), so a prepared sandbox can be fully confined while it waits."""
    return {
        "language": language,
        "compile_timeout_s": float(limits.compile_timeout_s),
        "timeout_s": float(limits.timeout_s),
        "memory_mb": int(limits.memory_mb),
        "rlimit_as": rlimit_as,
        "output_limit": int(limits.output_limit_kb) * 1024,
        "confine": confine,
        "site": list(py.site),
        "prelude": py.exports if limits.lcb_prelude else None,
    }


class Channel:
    """To the harness: length-prefixed ``marshal`` (cheap to load in there). From it: a count and
    length-prefixed byte fields, parsed defensively (the harness shares the solution's sandbox)."""

    def __init__(self, proc: subprocess.Popen, cap: int) -> None:
        self.proc, self.cap = proc, cap
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def send(self, message: dict) -> bool:
        return self.send_raw(marshal.dumps(message, 4))  # format 4: readable by any Python 3 in the sandbox

    def send_raw(self, body: bytes) -> bool:
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def _fill(self, n: int, deadline: float) -> bool | None:
        """True when n bytes are buffered; False on EOF; None at the deadline."""
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv(self, names: tuple[str, ...], deadline: float) -> dict | str:
        """{name: bytes}, or 'eof' / 'timeout' / 'oversized' / 'garbled'."""
        got = self._fill(4, deadline)
        if not got:
            return "eof" if got is False else "timeout"
        size = struct.unpack(">I", self.buf[:4])[0]
        if size > self.cap:
            return "oversized"
        got = self._fill(4 + size, deadline)
        if not got:
            return "eof" if got is False else "timeout"
        body, self.buf = memoryview(self.buf[4 : 4 + size]), self.buf[4 + size :]
        fields, pos = [], 4
        try:
            count = struct.unpack(">I", body[:4])[0]
            for _ in range(min(count, len(names) + 1)):
                n = struct.unpack(">I", body[pos : pos + 4])[0]
                fields.append(bytes(body[pos + 4 : pos + 4 + n]))
                pos += 4 + n
        except struct.error:
            return "garbled"
        if len(fields) != len(names) or count != len(names) or pos != size:
            return "garbled"
        return dict(zip(names, fields))


class Session:
    """One harness process in one tier, for one solution at a time, as a uid of its own (when we
    are root) and in a cgroup of its own (when the host gives us one)."""

    def __init__(self, tier: str, limits: Limits) -> None:
        self.tier, self.limits = tier, limits
        self.group, self.proc, self.plan, self.channel = None, None, None, None
        self.slot, self.uid, self.sent = None, None, True
        self.served, self.spoiled = 0, False  # solutions begun; whether it may not serve another
        self.cpu_base, self.oom_base = 0.0, 0  # the cgroup's counters when the current solution began
        self.members: frozenset[int] | None = None  # its cgroup's processes, the first solution ready
        self._inner: int | None = None  # a process inside its mount namespace, for /proc/<pid>/root
        self.log = tempfile.TemporaryFile()
        self.closed = False
        self._closing = threading.Lock()  # ``stop`` from another thread never hits a reaped pid

    @classmethod
    def start(cls, tier: str, py: Interpreter, limits: Limits, language: str = "python") -> Session:
        """Everything up to the solution: the sandbox runs, confined, waiting for its code. Raises
        OSError (after cleaning up) when the sandbox cannot be started."""
        self = cls(tier, limits)
        try:
            self.slot = Slot().__enter__()
            self.uid = self.slot.uid
            if self.uid is not None:
                _adopt_orphans_once()
            if cgroups.hierarchy() is not None:
                self.group = cgroups.Group.create((int(limits.memory_mb) + HARNESS_MB) << 20, int(limits.processes) + 8)
            self.plan = launch(tier, py, self.uid, limits, cgroup=self.group is not None)
            code = compiled_harness(py.path, HARNESS)
            self.proc = subprocess.Popen(
                (GATE if self.group else []) + self.plan.argv + [BOOT if code else HARNESS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                cwd=self.plan.cwd,
                env=self.plan.env,
                start_new_session=True,
                **self.plan.popen,
            )
            if self.group:
                self.group.attach(self.proc.pid)
                self.proc.stdin.write(b"\n")
            self.channel = Channel(self.proc, 2 * int(limits.output_limit_kb) * 1024 + (1 << 20))
            rlimit_as = None if self.group else memory_backstop(limits)
            self.sent = (code is None or self.channel.send_raw(code)) and self.channel.send(
                settings(limits, language, py, self.plan.confine, rlimit_as)
            )
        except (OSError, RuntimeError) as exc:
            self.close()
            raise OSError(str(exc)) from exc
        return self

    @property
    def reusable(self) -> bool:
        """Whether it may serve more than one solution: its harness confines its children (and,
        as their subreaper, can kill every process they leave: ``recycle`` asks it to)."""
        return self.tier in SAFE_TIERS and self.plan is not None

    def begin(self, code: str, mode: str, fn_name: str | None) -> bool:
        """Hand the waiting harness a solution. False if it is gone already."""
        self.served += 1
        if self.group is not None:
            self.cpu_base, self.oom_base = self.group.cpu_s(), self.group.oom_kills()
        return self.sent and self.channel.send({"code": code, "mode": mode, "fn_name": fn_name})

    def ready(self, deadline: float) -> dict | str:
        reply = self.channel.recv(READY_FIELDS, deadline)
        self.spoiled |= not isinstance(reply, dict) or reply["ready"] != b"ready"
        if self.members is None and self.group is not None and not self.spoiled:
            self.members = self.group.members()  # the harness waits for the first test
        return reply

    def test(self, message: dict, deadline: float) -> dict | str:
        """One test's exchange. A reply that is not one, or a harness that reports a failure of its
        own, leaves this sandbox to its current solution only."""
        reply = self.channel.recv(REPLY_FIELDS, deadline) if self.channel.send(message) else "eof"
        self.spoiled |= not isinstance(reply, dict) or bool(reply["error"])
        return reply

    def recycle(self) -> bool:
        """Ready for another solution: True once the harness has killed everything the last one
        left running and deleted every file it left. False: close it (see the module's doc)."""
        if self.spoiled or not self.reusable or self.served >= REUSE_MAX or self.oom_kills():
            return False
        if not self.channel.send({"end": True}):
            return False
        reply = self.channel.recv(CLEAR_FIELDS, time.monotonic() + CLEAR_S)
        return isinstance(reply, dict) and reply["state"] == b"clean" and not self.residue()

    def residue(self) -> str:
        """What the last solution left behind, as seen from outside the sandbox ("" when it is
        what a fresh sandbox has): processes in its cgroup beyond the harness's own, tmpfs bytes
        charged to it (beyond what the kernel's lazy count may lag by), inodes on its own /tmp and
        /dev/shm beyond their roots, or names in its host scratch dir. (Without a cgroup there is
        no process list nor tmpfs count to check.)"""
        members = self.group.members() if self.group is not None else None
        if members is not None:
            if self.members is not None and members != self.members:
                return f"processes {sorted(members - self.members)}"
            shmem = self.group.shmem_bytes()
            if shmem > cgroups.STAT_LAG_BYTES:  # less may be a deleted file not yet counted out
                return f"{shmem} bytes of tmpfs files"
        if self._inner is None and self.plan.scratch is None:
            procs = sorted(members) if members is not None else _descendants(self.proc.pid)
            self._inner = next((pid for pid in procs if _mount_ns(pid) not in (None, _mount_ns("self"))), 0)
        if self.plan.scratch:
            try:
                left = os.listdir(self.plan.scratch)
            except OSError as exc:
                return str(exc)
            return f"files {left[:5]}" if left else ""
        for path in ("tmp", "dev/shm") if self._inner else ():
            try:
                st = os.statvfs(f"/proc/{self._inner}/root/{path}")
            except OSError:
                continue  # not ours to see (another user namespace's files)
            if st.f_files - st.f_ffree > 1:
                return f"{st.f_files - st.f_ffree - 1} files in /{path}"
        return ""

    def oom_kills(self) -> int:
        """OOM kills in its cgroup since the current solution began."""
        return self.group.oom_kills() - self.oom_base if self.group else 0

    def cpu_s(self) -> float:
        """CPU time of everything in its cgroup since the current solution began."""
        return self.group.cpu_s() - self.cpu_base if self.group else 0.0

    def stop(self) -> None:
        """Kill its processes now, from any thread (an interrupted batch): the solution in flight
        ends at once, with its worker's next read; ``close`` still tears the sandbox down."""
        with self._closing:
            if self.closed or self.proc is None:
                return
            self.spoiled = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            if self.group is not None:
                self.group.kill(rounds=1)

    def harness_log(self) -> str:
        self.log.seek(0)
        return self.log.read()[-EXCERPT:].decode("utf-8", "replace")

    def close(self) -> None:
        """Kill everything of this sandbox, then remove its scratch dir (nothing may still be
        writing when it goes), then hand its cgroup back (to the pool: the files, charged to it
        as memory, are gone by then and not counted against the next solution), then its uid.
        Idempotent."""
        with self._closing:
            if self.closed:
                return
            self.closed = True
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        if self.group is not None:
            self.group.kill()
        if self.uid is not None:
            # a daemon that left the session survives without a pid namespace or cgroup; with
            # either, the kernel is already killing everything inside and one sweep is enough
            contained = "pid" in NAMESPACES[self.tier] or self.group is not None
            kill_uid(self.uid, rounds=1 if contained else 50)
        if self.plan is not None and self.plan.scratch:
            try:
                remove_tree(self.plan.scratch)
            except OSError:
                pass
        if self.group is not None:
            self.group.release()
        self.log.close()
        if self.slot is not None:
            self.slot.__exit__(None, None, None)


def _descendants(pid: int, depth: int = 4) -> list[int]:
    """``pid``'s children, theirs, ... (``depth`` levels): the tier's wrapper processes and the
    harness, found without a cgroup to list them."""
    found, level = [], [pid]
    for _ in range(depth):
        nxt = []
        for parent in level:
            try:
                with open(f"/proc/{parent}/task/{parent}/children") as f:
                    nxt += [int(child) for child in f.read().split()]
            except (OSError, ValueError):
                continue
        found += nxt
        level = nxt
    return found


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


@cache
def _adopt_orphans_once() -> None:
    adopt_orphans()
