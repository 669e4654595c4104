"""What the harness does to itself and to every child before untrusted code runs: its own root
file system (the ``unshare`` tier), capabilities dropped, Landlock, and a seccomp filter.

Runs INSIDE the sandbox: the supervisor sends this file's source followed by ``harness.py`` to
``python -I -S -c``, so it imports nothing but the standard library (any Python >= 3.8).
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
SECCOMP_MODE_FILTER = 2


def _check(rc, what):
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


# ---------------------------------------------------------------- a root of its own (unshare tier)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_ST_TO_MS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}  # + atime flags
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")


def _mount(src, dst, fstype, flags, data=None):
    enc = [None if s is None else s.encode() for s in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {dst}")


def _bind_ro(src, dst):
    """A read-only, nosuid, nodev bind. Flags the host mount has (noexec, atime) must be kept: a
    user namespace may not clear them (EPERM)."""
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC)
    keep = 0
    flags = os.statvfs(src).f_flag
    for st, ms in _ST_TO_MS.items():
        if flags & st:
            keep |= ms
    _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def build_root(spec):
    """Like bubblewrap: a fresh tmpfs becomes ``/``, with read-only binds of what the interpreter
    and compiler need, the basic device nodes, ``/proc`` of our own pid namespace and size-capped
    tmpfs ``/tmp`` (the working dir) and ``/dev/shm``; then pivot into it and detach the host's
    root, so no host path, socket or file is reachable or even visible. Needs CAP_SYS_ADMIN in the
    user namespace that owns our mount namespace (``unshare --user --map-root-user --mount``)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = spec["at"]
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for op in spec["ops"]:
        if op[0] == "symlink":
            os.makedirs(os.path.dirname(new + op[2]), exist_ok=True)
            os.symlink(op[1], new + op[2])
        elif os.path.exists(op[1]) or op[0] == "ro":
            _bind_ro(op[1], new + op[1])
    os.makedirs(new + "/dev", exist_ok=True)
    for name in DEVICES:
        open(new + "/dev/" + name, "a").close()
        _mount("/dev/" + name, new + "/dev/" + name, None, MS_BIND)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", new + "/dev/" + name)
    os.symlink("/proc/self/fd", new + "/dev/fd")
    size = f"mode=1777,size={int(spec['tmp_mb'])}m"
    for path in ("/dev/shm", "/tmp", "/proc"):
        os.makedirs(new + path, exist_ok=True)
        if path == "/proc":
            _mount("proc", new + path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            _mount("tmpfs", new + path, "tmpfs", MS_NOSUID | MS_NODEV, size)
    os.chdir(new)
    _check(_libc.syscall(ctypes.c_long(_PIVOT_ROOT[os.uname().machine]), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", 2), "detach the host root")  # MNT_DETACH: the old root was stacked below
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/tmp")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    """Root of the user namespace no more: every capability gone from every set, for good (the
    securebits stop a later exec from granting them back to uid 0)."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read()) if os.path.exists("/proc/sys/kernel/cap_last_cap") else 40
    _check(_libc.prctl(PR_SET_SECUREBITS, 0xEF, 0, 0, 0), "securebits")  # NOROOT, NO_SETUID_FIXUP, ... all locked
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability")
    _libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # CLEAR_ALL (absent before 4.3: nothing to clear)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def become_subreaper():
    """Orphaned descendants are reparented to us (and reaped by us), not to the host's init."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "child subreaper")


def lock_down():
    """Not dumpable (no /proc/<pid>/mem, fd or environ for other processes of the same uid) and
    no_new_privs (required by seccomp and Landlock; no setuid binary regains privileges)."""
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


# ---------------------------------------------------------------- Landlock (ctypes, syscalls 444-446)

_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446  # the same numbers on x86_64 and aarch64
_FS_READ = 1 | 4 | 8  # execute, read_file, read_dir
_FS_ALL_V1 = (1 << 13) - 1
_FS_EXTRA = {2: 1 << 13, 3: 1 << 14, 5: 1 << 15}  # refer, truncate, ioctl_dev by ABI
_FILE_RIGHTS = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # the only rights a rule on a regular file may hold


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi():
    abi = _libc.syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


def _ll_create(abi, fs, net, scoped):
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    fd = _libc.syscall(ctypes.c_long(_LL_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    _check(fd, "landlock_create_ruleset")
    return int(fd)


def _ll_restrict(fd):
    _check(_libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)), "landlock_restrict_self")
    os.close(fd)


def apply_landlock(abi, read_paths, write_paths):
    """File system: read (and execute) beneath read_paths, everything beneath write_paths, nothing
    else; no TCP bind/connect (ABI >= 4); no signals or abstract sockets outside (ABI >= 6)."""
    fs_all = _FS_ALL_V1
    for version, bit in _FS_EXTRA.items():
        if abi >= version:
            fs_all |= bit
    net = 3 if abi >= 4 else 0
    scoped = 3 if abi >= 6 else 0
    fd = _ll_create(abi, fs_all, net, scoped)
    for paths, rights in ((read_paths, _FS_READ), (write_paths, fs_all)):
        for path in paths:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            allowed = rights if os.path.isdir(path) else rights & _FILE_RIGHTS
            rule = _PathBeneath(allowed, pfd)
            rc = _libc.syscall(
                ctypes.c_long(_LL_ADD), ctypes.c_int(fd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)
            )
            os.close(pfd)
            _check(rc, "landlock_add_rule " + path)
    _ll_restrict(fd)


def scope_signals(abi):
    """A nested Landlock domain for one child: it may no longer signal the harness (or anything
    outside its own domain), whatever uid they share."""
    if abi >= 6:
        _ll_restrict(_ll_create(abi, 0, 0, 2))


# ---------------------------------------------------------------- seccomp (a BPF deny-list)

# Denied outright (EPERM): new namespaces and mounts, ptrace and cross-process memory, keyrings,
# bpf, io_uring, module and kexec loading, file handles, SysV IPC and POSIX message queues (the
# landlock tier shares the host's IPC namespace), inotify/fanotify (watching host paths), and
# process-wide knobs (acct, swap, reboot, personality, quotas, syslog).
_SYSCALLS = {
    "x86_64": dict(
        arch=0xC000003E, x32=True, socket=41, connect=42, bind=49, sendto=44, sendmsg=46, sendmmsg=307,
        ioctl=16, clone=56, clone3=435, kill=62,
        own_pid_arg0=[302, 203, 142, 144, 314],  # prlimit64, sched_setaffinity/setparam/setscheduler/setattr
        own_process=[(141, 0), (251, 1)],  # setpriority(PRIO_PROCESS, 0), ioprio_set(IOPRIO_WHO_PROCESS, 0)
        deny=[101, 310, 311, 272, 308, 165, 166, 155, 161, 250, 248, 249, 321, 323, 298, 425, 426, 427,
              246, 320, 175, 313, 176, 167, 168, 169, 163, 304, 303, 430, 431, 432, 433, 428, 429, 442,
              135, 438, 312, 440, 447, 256, 279, 179, 212, 103, 153, 172, 173,
              29, 30, 31, 67, 64, 65, 66, 220, 68, 69, 70, 71, 240, 241, 242, 243, 244, 245,
              253, 254, 294, 300],
    ),
    "aarch64": dict(
        arch=0xC00000B7, x32=False, socket=198, connect=203, bind=200, sendto=206, sendmsg=211, sendmmsg=269,
        ioctl=29, clone=220, clone3=435, kill=129,
        own_pid_arg0=[261, 122, 118, 119, 274],
        own_process=[(140, 0), (30, 1)],
        deny=[117, 270, 271, 97, 268, 40, 39, 41, 51, 219, 217, 218, 280, 282, 241, 425, 426, 427,
              104, 294, 105, 273, 106, 224, 225, 142, 89, 265, 264, 430, 431, 432, 433, 428, 429, 442,
              92, 438, 272, 440, 447, 238, 239, 60, 18, 116, 58,
              194, 195, 196, 197, 190, 191, 192, 193, 186, 187, 188, 189, 180, 181, 182, 183, 184, 185,
              26, 27, 262],
    ),
}  # fmt: skip
_NS_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
_AF_UNIX = 1


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _EPERM, _ENOSYS, _KILL = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38, 0x80000000


def _arg(n, high=False):
    """Offset of args[n]'s low (or high) 32 bits in struct seccomp_data (little-endian)."""
    return 16 + 8 * n + (4 if high else 0)


def seccomp_program(machine, host_visible, deny_kill_all=True):
    """(code, jt, jf, k) tuples. Every tier: the deny list; prlimit/setpriority/affinity only on
    oneself (pid 0), so the harness's limits and priority are out of reach; no kill(-1); no TTY
    injection; no namespaces from clone; clone3 -> ENOSYS (glibc falls back to clone). Namespaced
    tiers: AF_UNIX sockets only (their file system and network are private). ``host_visible`` (the
    landlock tier sees the host's file system and abstract sockets): no socket() at all and no way
    to address one (connect, bind, sendto with an address, sendmsg); socketpair still works.
    (setpriority/ioprio_set only for "this process": a user- or group-wide call would reach the
    harness, which runs as the same uid.) ``deny_kill_all=False`` leaves kill(-1) to the harness,
    which carries this filter itself; its children add ``kill_all_program`` on top."""
    t = _SYSCALLS.get(machine)
    if t is None:
        return None
    asm = [(_LD, 4), (_JEQ, t["arch"], None, "kill"), (_LD, 0)]
    if t["x32"]:
        asm.append((_JGE, 0x40000000, "eperm", None))
    asm += [(_JEQ, nr, "eperm", None) for nr in t["deny"]]
    asm += [(_JEQ, nr, "own_pid0", None) for nr in t["own_pid_arg0"]]
    asm += [(_JEQ, nr, f"own_process{which}", None) for nr, which in t["own_process"]]
    if host_visible:
        asm += [(_JEQ, t[name], "eperm", None) for name in ("socket", "connect", "bind", "sendmsg", "sendmmsg")]
        asm.append((_JEQ, t["sendto"], "sendto", None))
    else:
        asm.append((_JEQ, t["socket"], "socket", None))
    asm += [
        (_JEQ, t["kill"], "kill_all" if deny_kill_all else "allow", None),
        (_JEQ, t["ioctl"], "ioctl", None), (_JEQ, t["clone"], "clone", None),
        (_JEQ, t["clone3"], "enosys", "allow"),
        ("own_pid0",), (_LD, _arg(0)), (_JEQ, 0, "allow", "eperm"),
        ("own_process0",), (_LD, _arg(0)), (_JEQ, 0, "own_pid1", "eperm"),
        ("own_process1",), (_LD, _arg(0)), (_JEQ, 1, "own_pid1", "eperm"),
        ("own_pid1",), (_LD, _arg(1)), (_JEQ, 0, "allow", "eperm"),
        ("socket",), (_LD, _arg(0)), (_JEQ, _AF_UNIX, "allow", "eperm"),
        ("sendto",), (_LD, _arg(4)), (_JEQ, 0, None, "eperm"), (_LD, _arg(4, True)), (_JEQ, 0, "allow", "eperm"),
        ("kill_all",), (_LD, _arg(0)), (_JEQ, 0xFFFFFFFF, "eperm", "allow"),
        ("ioctl",), (_LD, _arg(1)), (_JEQ, _TIOCSTI, "eperm", None), (_JEQ, _TIOCLINUX, "eperm", "allow"),
        ("clone",), (_LD, _arg(0)), (_JSET, _NS_FLAGS, "eperm", "allow"),
        ("allow",), (_RET, _ALLOW), ("eperm",), (_RET, _EPERM), ("enosys",), (_RET, _ENOSYS), ("kill",), (_RET, _KILL),
    ]  # fmt: skip
    return _assemble(asm)


def kill_all_program(machine):
    """The one rule the harness's own filter leaves out: no kill(-1). A test child attaches only
    this (a few instructions) on top of the inherited filter, instead of compiling the whole
    filter again for every test (~0.1 ms of kernel time per test)."""
    t = _SYSCALLS.get(machine)
    if t is None:
        return None
    return _assemble([
        (_LD, 4), (_JEQ, t["arch"], None, "kill"), (_LD, 0), (_JEQ, t["kill"], None, "allow"),
        (_LD, _arg(0)), (_JEQ, 0xFFFFFFFF, "eperm", "allow"),
        ("allow",), (_RET, _ALLOW), ("eperm",), (_RET, _EPERM), ("kill",), (_RET, _KILL),
    ])  # fmt: skip


def _assemble(asm):
    """Labels resolved into relative jumps: (code, jt, jf, k) tuples."""
    labels, prog = {}, []
    for item in asm:
        if len(item) == 1:
            labels[item[0]] = len(prog)
        else:
            prog.append(item)
    out = []
    for idx, item in enumerate(prog):
        if len(item) == 2:
            out.append((item[0], 0, 0, item[1]))
            continue
        code, k, jt, jf = item
        rel = [0 if target is None else labels[target] - idx - 1 for target in (jt, jf)]
        if max(rel) > 255:
            raise ValueError("seccomp jump out of range")
        out.append((code, rel[0], rel[1], k))
    return out


def seccomp_filter(machine, host_visible, deny_kill_all=True):
    """A ready ``sock_fprog`` (built once in the harness; each child only makes the prctl), or None
    on an architecture we have no syscall table for."""
    return as_fprog(seccomp_program(machine, host_visible, deny_kill_all))


def as_fprog(prog):
    if prog is None:
        return None
    arr = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), arr)
    fprog._keep = arr  # the program must outlive the struct that points at it
    return fprog


def apply_seccomp(fprog):
    """Needs no_new_privs (set by the harness on itself, inherited)."""
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


# ---------------------------------------------------------------- clean-up (supervisor and harness)


def empty_dir(path):
    """Delete everything in ``path`` whatever a solution left there: no recursion (a tree 100 000
    deep is fine), never a symlink followed, at most two directory fds open. Each subdirectory's
    own subdirectories are first moved up to the top, then it is emptied and removed. Only once
    nothing that could write there runs any more."""
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    moved = [0]
    try:
        while True:
            entries = list(os.scandir(top))
            if not entries:
                break
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        _flatten(top, entry.name, moved)
                        os.rmdir(entry.name, dir_fd=top)
                    else:
                        os.unlink(entry.name, dir_fd=top)
                except FileNotFoundError:
                    pass
    finally:
        os.close(top)


def remove_tree(path):
    """``empty_dir``, then the dir itself (the supervisor, on a namespace-free sandbox's scratch)."""
    try:
        os.chmod(path, 0o700, follow_symlinks=False)
        empty_dir(path)
    except FileNotFoundError:
        return
    os.rmdir(path)


def _flatten(top, name, moved):
    """Move ``name``'s subdirectories up into ``top`` and delete everything else in it."""
    os.chmod(name, 0o700, dir_fd=top)  # a dir the solution made unreadable (we are its owner or root)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
    try:
        for sub in list(os.scandir(fd)):
            if sub.is_dir(follow_symlinks=False):
                while True:
                    moved[0] += 1
                    target = f".branchmerge-rm-{moved[0]}"
                    try:
                        os.lstat(target, dir_fd=top)
                    except FileNotFoundError:
                        break
                os.rename(sub.name, target, src_dir_fd=fd, dst_dir_fd=top)
            else:
                os.unlink(sub.name, dir_fd=fd)
    finally:
        os.close(fd)
