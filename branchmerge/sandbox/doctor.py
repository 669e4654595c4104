"""``sandbox doctor``: which tiers work here, which one untrusted code runs in, and plainly what
each tier and the limits do and do not isolate on this machine."""

from __future__ import annotations

import os

from branchmerge.sandbox import cgroups
from branchmerge.sandbox.session import REUSE_MAX
from branchmerge.sandbox.supervisor import probe
from branchmerge.sandbox.tiers import NAMESPACES, SAFE_TIERS, SLOT_UIDS, TIERS, interpreter

_OWN_ROOT = [
    "files: a root of its own (read-only /usr, the interpreter, 4 files of /etc; tmpfs /tmp and /dev/shm "
    "capped at disk_mb): no host path, socket or file is reachable or visible",
    "network, IPC (SysV, POSIX queues), pids, hostname: namespaces of its own",
    "no capabilities, no_new_privs; seccomp (no ptrace, keyrings, bpf, io_uring, mounts, new namespaces, "
    "prlimit/setpriority/affinity on other processes); Landlock (writes only to /tmp, /dev/shm)",
]
_KERNEL = "it shares the host kernel (seccomp narrows what it can call; a kernel bug is not contained)"
_SHARED_KERNEL = [_KERNEL, "host-wide /proc files (meminfo, cpuinfo, loadavg, uptime) and timing side channels"]
COVERAGE = {
    "bwrap": {"isolates": _OWN_ROOT + ["all of it set up by bubblewrap, then checked by the harness's own layers"],
              "does_not": _SHARED_KERNEL},
    "unshare": {"isolates": _OWN_ROOT + ["root built by the harness (as bwrap does) before any untrusted byte, "
                                         "then every capability dropped for good"],
                "does_not": _SHARED_KERNEL},
    "landlock": {
        "isolates": [
            "writes: only its scratch dir and /dev/null (Landlock); reads: /usr, the interpreter, 4 files of /etc",
            "no socket() at all and no way to address one (connect, bind, sendto with an address, sendmsg): "
            "no network, no host UNIX or abstract socket; socketpair only",
            "no SysV IPC, POSIX message queues, inotify or fanotify (seccomp)",
            "signals only inside its own Landlock domain (ABI >= 6) and its own uid; no ptrace",
        ],
        "does_not": [
            "metadata of host paths: stat, readlink and access on paths its uid can traverse still reveal "
            "that they exist, their sizes and times (Landlock checks opens, not lookups)",
            "no pid namespace: it can see which pids exist (kill(pid, 0)); its leftovers are killed by its "
            "harness after each test (kill(-1), which Landlock's signal scope (ABI >= 6) or a uid of its own "
            "keeps to the sandbox; else level by level as their subreaper) and by uid and cgroup sweeps, not by "
            "the kernel: if the harness itself dies mid-test, without root or a cgroup what it left lives on",
            "the host's network namespace and hostname (unreachable without sockets, but not hidden)",
            _KERNEL + "; timing side channels",
        ],
    },
    "none": {"isolates": ["rlimits and a session of its own only"], "does_not": ["anything else: only with --unsafe"]},
}  # fmt: skip

CGROUP_COVERS = (
    "memory of the whole solution (every process, and the shmem, memfd and tmpfs pages it makes; the compiler "
    "too), processes and threads (pids.max), CPU time of every process per test (children it never reaps "
    "included: time_limit when they together exceed the limit); memory_limit from the kernel's OOM-kill count, "
    "or when the cgroup's peak during a test, less what it held before and the harness's share, is over the limit"
)
FALLBACK = (
    "no cgroup: memory is capped per process only (RLIMIT_AS = 2x the limit + 256 MiB; memory_limit when a "
    "process's peak RSS goes over the limit), so several processes or memfds together can exceed it; "
    "processes are capped by RLIMIT_NPROC as root (a uid per sandbox) or, without root, in the bwrap and unshare "
    "tiers (a user namespace of their own, counted apart from Linux 5.14 on), not in the landlock tier without "
    "root; in the landlock tier the files it "
    "writes have no total cap (RLIMIT_FSIZE per file only); CPU time counts the test process and the children "
    "it reaps only"
)

REUSE = (
    f"a sandbox serves up to {REUSE_MAX} solutions in turn: between two, every process of the first is killed "
    "(the harness is the subreaper of every test, so whatever a solution left running is its descendant, and "
    "is killed level by level) and every file it left is deleted; the supervisor then checks from outside "
    "(its cgroup's process list and tmpfs pages, beyond the 128 pages a CPU its lazy count may lag by; the "
    "inodes of its own /tmp and /dev/shm, or its scratch dir; "
    "without a cgroup the files only); a sandbox whose harness failed, stopped answering, could not kill "
    "a leftover within 2 s, left anything that check sees, or met an OOM kill serves no other"
)


def doctor_report() -> dict:
    """Every tier's self-test, the tier ``run`` would pick, cgroup support, what runs inside."""
    py = interpreter(None)
    rows = []
    for tier in TIERS:
        ok, why, layers = probe(tier)
        layers = {"namespaces": ",".join(NAMESPACES[tier]) or "none", **layers} if ok else layers
        rows.append({"tier": tier, "works": ok, "why_not": why, "layers": layers, "safe": tier in SAFE_TIERS,
                     **COVERAGE[tier]})  # fmt: skip
    selected = next((r["tier"] for r in rows if r["works"] and r["safe"]), None)
    uid = f"dedicated per sandbox ({SLOT_UIDS.start}-{SLOT_UIDS.stop - 1})" if os.geteuid() == 0 else "the caller's"
    found = cgroups.hierarchy()
    cgroup = {
        "available": found is not None,
        "where": found.describe() if found else None,
        "why_not": cgroups.why_not(),
        "covers": CGROUP_COVERS if found else FALLBACK,
    }
    return {
        "tiers": rows,
        "selected": selected,
        "python": f"{py.path} {py.version}" if py else None,
        "uid": uid,
        "cgroup": cgroup,
        "time": "per test: CPU time against the limit; wall clock only as a cap (3x the limit + 1 s)",
        "reuse": REUSE,
    }
