"""The program that runs INSIDE the sandbox: it confines itself, compiles the solution once and
forks one child per test.

It is started as ``python -I -S -c <this file's source>`` (so it needs nothing from the caller's
file system) and talks to the supervisor on fds 0/1, which it moves out of the way before any
untrusted code runs: the supervisor sends ``marshal`` data (it is trusted); the harness answers
with plain length-prefixed byte fields (it is not, so the supervisor never unmarshals anything).
Start-up time is the per-solution overhead, so only cheap modules are imported up front. It never sees expected outputs: it only returns what the solution printed
(or returned), and the supervisor outside compares. Standard library only; keep it importable by
any Python >= 3.8 the sandbox may use.
"""

import _signal as signal  # the C module: `signal` would import enum (3 ms per start-up)
import ctypes
import io
import marshal
import os
import resource
import select
import struct
import sys
import time

# ---------------------------------------------------------------- protocol

READY_FIELDS = ("ready", "python", "landlock_abi", "seccomp", "rlimits", "compile_error")
REPLY_FIELDS = ("status", "stdout", "stderr", "result", "time_s", "cpu_s", "rss_kb", "exit")


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    return None if body is None else marshal.loads(body)


def send(fd, *fields):
    """One message: a count, then each field as length + bytes (str is sent as UTF-8)."""
    parts = [struct.pack(">I", len(fields))]
    for field in fields:
        data = field if isinstance(field, bytes) else str(field).encode("utf-8", "replace")
        parts += [struct.pack(">I", len(data)), data]
    body = b"".join(parts)
    data = memoryview(struct.pack(">I", len(body)) + body)
    while data:
        data = data[os.write(fd, data) :]


# ---------------------------------------------------------------- Landlock and seccomp (ctypes)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

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
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    return int(fd)


def _ll_restrict(fd):
    if _libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
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
            if rc < 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
    _ll_restrict(fd)


def scope_signals(abi):
    """A nested Landlock domain for one test's child: it may no longer signal the harness."""
    if abi >= 6:
        _ll_restrict(_ll_create(abi, 0, 0, 2))


# syscall numbers denied outright (EPERM), then socket / ioctl / clone / clone3 handled apart
_SYSCALLS = {
    "x86_64": dict(
        arch=0xC000003E, socket=41, ioctl=16, clone=56, clone3=435,
        deny=[101, 310, 311, 272, 308, 165, 166, 155, 161, 250, 248, 249, 321, 323, 298, 425, 426, 427,
              246, 175, 313, 176, 167, 168, 169, 163, 304, 303, 430, 432, 428, 429, 135],
    ),
    "aarch64": dict(
        arch=0xC00000B7, socket=198, ioctl=29, clone=220, clone3=435,
        deny=[117, 270, 271, 97, 268, 40, 39, 41, 51, 219, 217, 218, 280, 282, 241, 425, 426, 427,
              104, 105, 273, 106, 224, 225, 142, 89, 265, 264, 430, 432, 428, 429, 92],
    ),
}  # fmt: skip
_NS_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _EPERM, _ENOSYS, _KILL = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38, 0x80000000


def seccomp_program(machine):
    """A deny-list BPF filter: no sockets but AF_UNIX, no new namespaces, no ptrace or cross-process
    memory access, no mounts, no keyring/bpf/io_uring/module loading, no TTY injection. Returns
    (code, jt, jf, k) tuples; jumps are written as labels and resolved at the end."""
    table = _SYSCALLS.get(machine)
    if table is None:
        return None
    arg0, arg1 = 16, 24  # offsets of the low 32 bits of args[0], args[1] in seccomp_data
    asm = [(_LD, 4), (_JEQ, table["arch"], None, "kill"), (_LD, 0)]
    if machine == "x86_64":
        asm.append((_JGE, 0x40000000, "eperm", None))  # the x32 ABI
    asm += [(_JEQ, nr, "eperm", None) for nr in table["deny"]]
    asm += [
        (_JEQ, table["socket"], None, "ioctl"), (_LD, arg0), (_JEQ, 1, "allow", "eperm"),  # AF_UNIX only
        ("ioctl",), (_JEQ, table["ioctl"], None, "clone"), (_LD, arg1),
        (_JEQ, _TIOCSTI, "eperm", None), (_JEQ, _TIOCLINUX, "eperm", "allow"),
        ("clone",), (_JEQ, table["clone"], None, "clone3"), (_LD, arg0), (_JSET, _NS_FLAGS, "eperm", "allow"),
        ("clone3",), (_JEQ, table["clone3"], "enosys", "allow"),  # glibc then falls back to clone
        ("allow",), (_RET, _ALLOW), ("eperm",), (_RET, _EPERM), ("enosys",), (_RET, _ENOSYS),
        ("kill",), (_RET, _KILL),
    ]  # fmt: skip
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
        else:
            code, k, jt, jf = item
            rel = [0 if t is None else labels[t] - idx - 1 for t in (jt, jf)]
            out.append((code, rel[0], rel[1], k))
    return out


def apply_seccomp(machine):
    prog = seccomp_program(machine)
    if prog is None:
        return False
    arr = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), arr)
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp")
    return True


# ---------------------------------------------------------------- LiveCodeBench's prelude

# LiveCodeBench runs every solution after ``from <m> import *`` for these modules (in this order),
# then ``import <m>`` for all but builtins/typing, then ``sys.setrecursionlimit(50000)``.
# Honest solutions lean on it (``deque`` without an import), so it is on by default; only the
# modules whose names the code mentions are imported, which keeps start-up cheap.
STAR_ORDER = [
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
]  # fmt: skip
PLAIN = [m for m in STAR_ORDER if m not in ("builtins", "typing")]
_DYNAMIC = {"eval", "exec", "globals", "vars", "locals", "__import__", "getattr"}


def code_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= code_names(const)
    return names


def prelude_namespace(exports, names):
    """The globals LiveCodeBench's prelude would bind, restricted to what the code can see."""
    full = bool(names & _DYNAMIC)
    chosen = [m for m in STAR_ORDER if full or m == "builtins" or m in names or names.intersection(exports[m])]
    ns = {}
    for m in chosen:
        module = __import__(m)  # all top-level modules
        for name in exports[m]:
            if hasattr(module, name):
                ns[name] = getattr(module, name)
    for m in PLAIN:
        if m in chosen:
            ns[m] = sys.modules[m]
    return ns


# ---------------------------------------------------------------- C++: compiled once per solution

CXX = ["g++", "-O2", "-std=c++17", "-DONLINE_JUDGE", "-pipe", "-o", "solution", "solution.cpp"]


def compile_cpp(source, timeout_s):
    """g++ in the working dir, inside the sandbox; (binary path, '') or ('', compiler message)."""
    import subprocess

    with open("solution.cpp", "w") as f:
        f.write(source)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": os.getcwd(), "LANG": "C.UTF-8"}
    try:
        proc = subprocess.Popen(CXX, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip
    except OSError as exc:
        return "", f"cannot run g++: {exc}"
    try:
        output = proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and cc1plus/as/ld under it
        proc.communicate()
        return "", f"compilation timed out after {timeout_s:g}s"
    if proc.returncode != 0:
        return "", output.decode("utf-8", "replace")[-2000:] or "g++ failed"
    return os.path.join(os.getcwd(), "solution"), ""


# ---------------------------------------------------------------- one test in a forked child

EXIT_MEMORY = 3  # the child's exit status for an uncaught MemoryError


def _child(job, code_obj, prelude, stdin_fd, out_w, err_w, res_w, args, abi):
    """Runs in the forked child; never returns."""
    status = 1
    try:
        os.setpgid(0, 0)
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if res_w is not None:
            os.dup2(res_w, 3)
        os.closerange(4 if res_w is not None else 3, 1 << 16)
        mem = int(job["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(job["timeout_s"]) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        scope_signals(abi)
        if job["language"] == "cpp":  # code_obj is the compiled binary's path
            resource.setrlimit(resource.RLIMIT_STACK, (mem, mem))  # deep recursion, as judges allow
            os.execv(code_obj, [code_obj])
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)))
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(2, "w", closefd=False)), line_buffering=True
        )
        sys.setrecursionlimit(50000)
        if hasattr(sys, "set_int_max_str_digits"):
            sys.set_int_max_str_digits(0)
        module = type(sys)("__main__" if job["mode"] == "stdio" else "tmp_sol")
        sys.modules[module.__name__] = module  # so pickle (multiprocessing) and `import __main__` find it
        g = module.__dict__
        g["__builtins__"] = __builtins__
        g.update(prelude)
        for name in ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__"):
            if name in g:
                g[name] = getattr(sys, name)
        status = 0
        try:
            exec(code_obj, g)
            if job["mode"] == "call":
                target = g["Solution"]() if "class Solution" in job["code"] and "Solution" in g else None
                fn = getattr(target, job["fn_name"]) if target is not None else g[job["fn_name"]]
                value = fn(*args)
                import json  # imported by the harness already for call-based jobs

                try:
                    text = json.dumps({"ok": list(value) if isinstance(value, tuple) else value})
                except (TypeError, ValueError) as exc:
                    text = json.dumps({"error": f"return value is not JSON: {type(value).__name__} ({exc})"})
                with open(3, "wb", closefd=False) as result:
                    result.write(text.encode("utf-8"))
        except SystemExit:
            pass
        except MemoryError:
            status = EXIT_MEMORY
            sys.stderr.write("MemoryError\n")
        except BaseException as exc:
            status = 1
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != "<solution>":
                tb = tb.tb_next  # the harness's own frames say nothing about the solution
            import traceback  # only a failing test pays for it

            traceback.print_exception(type(exc), exc, tb)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            status = status or 1
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def run_test(job, code_obj, prelude, message, abi, kill_all):
    data = message.get("stdin", "").encode("utf-8", "surrogatepass")
    stdin_fd = os.memfd_create("stdin", 0)
    os.write(stdin_fd, data)
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe() if job["mode"] == "call" else (None, None)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(job, code_obj, prelude, stdin_fd, out_w, err_w, res_w, message.get("args", []), abi)
    for fd in (stdin_fd, out_w, err_w, res_w):
        if fd is not None:
            os.close(fd)
    pidfd = os.pidfd_open(pid)
    streams = {fd: [] for fd in (out_r, err_r, res_r) if fd is not None}
    sizes = dict.fromkeys(streams, 0)
    limit, killed, exited = int(job["output_limit"]), None, False
    deadline = start + float(job["timeout_s"])
    open_fds = set(streams)

    def take(fd, chunk):
        sizes[fd] += len(chunk)
        if fd == err_r:  # stderr: counted in full, only its tail kept
            streams[fd] = [(b"".join(streams[fd]) + chunk)[-8192:]]
        else:
            streams[fd].append(chunk)

    while not killed and not exited:
        left = deadline - time.monotonic()
        if left <= 0:
            killed = "time_limit"
            break
        ready, _, _ = select.select(list(open_fds) + [pidfd], [], [], left)
        if pidfd in ready:
            exited = True
            for fd in open_fds:  # drain what the child wrote; a grandchild may hold the pipe open
                os.set_blocking(fd, False)
                try:
                    while sum(sizes.values()) <= limit:
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            break
                        take(fd, chunk)
                except BlockingIOError:
                    pass
        else:
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    take(fd, chunk)
                else:
                    open_fds.discard(fd)
        if sum(sizes.values()) > limit:
            killed = "output_limit"
    if killed:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
    _, wstatus, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    for fd in list(streams) + [pidfd]:
        os.close(fd)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the test left in its process group
    except OSError:
        pass
    if kill_all:
        try:
            os.kill(-1, signal.SIGKILL)  # and any daemon it set loose: everything of our uid but us
        except OSError:
            pass
    status = killed or _classify(wstatus)
    if job["language"] == "cpp":
        status = _classify_cpp(status, b"".join(streams[err_r]))
    return (
        status,
        b"".join(streams[out_r]),
        b"".join(streams[err_r])[-4096:],
        b"".join(streams[res_r]) if res_r is not None else b"",
        round(wall, 4),
        round(usage.ru_utime + usage.ru_stime, 4),
        usage.ru_maxrss,
        os.waitstatus_to_exitcode(wstatus),
    )  # in the order of REPLY_FIELDS


def _classify(wstatus):
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        if sig == signal.SIGXCPU:
            return "time_limit"
        if sig == signal.SIGKILL:
            return "memory_limit"  # nobody else kills it: the kernel's OOM killer did
        return "runtime_error"
    code = os.WEXITSTATUS(wstatus)
    return "ok" if code == 0 else ("memory_limit" if code == EXIT_MEMORY else "runtime_error")


def _classify_cpp(status, stderr):
    """A C++ allocation failure ends in std::bad_alloc and SIGABRT: that is a memory limit."""
    if status == "runtime_error" and b"bad_alloc" in stderr:
        return "memory_limit"
    return status


# ---------------------------------------------------------------- main


def confine(conf):
    """Every layer the supervisor asked for, before any untrusted byte is read. Returns what held."""
    layers = {}
    for name, value in conf["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    layers["rlimits"] = sorted(conf["rlimits"])
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")
    abi = landlock_abi() if conf["landlock"] else 0
    if abi:
        apply_landlock(abi, conf["read_paths"], conf["write_paths"])
    layers["landlock_abi"] = abi
    layers["seccomp"] = bool(conf["seccomp"]) and apply_seccomp(os.uname().machine)
    return layers, abi


def main():
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    job = recv(proto_in)
    if job is None:
        return
    layers, abi = confine(job["confine"])
    import builtins

    builtins.exit = builtins.quit = sys.exit  # ``python -S`` has no site to define them
    sys.path.extend(job.get("site", []))
    ready = ["ready", sys.version.split()[0], layers["landlock_abi"], int(layers["seccomp"]), ",".join(layers["rlimits"])]
    if job["language"] == "cpp":
        code_obj, error = compile_cpp(job["code"], float(job["compile_timeout_s"]))
        if error:
            send(proto_out, *ready, error)
            return
        prelude = {}
    else:
        try:
            code_obj = compile(job["code"], "<solution>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            import traceback

            send(proto_out, *ready, "".join(traceback.format_exception_only(type(exc), exc))[-2000:])
            return
        if job["mode"] == "call":
            import json  # noqa: F401  (once here rather than in every test's child)
        prelude = prelude_namespace(job["prelude"], code_names(code_obj)) if job.get("prelude") else {}
    send(proto_out, *ready, "")  # in the order of READY_FIELDS
    while True:
        message = recv(proto_in)
        if message is None:
            return
        send(proto_out, *run_test(job, code_obj, prelude, message, abi, job["confine"]["kill_all"]))


if __name__ == "__main__":
    main()
