"""The program that runs INSIDE the sandbox: it confines itself, then serves solutions in turn:
each compiled once, one forked child per test, and everything it left cleared before the next.

It is started as ``python -I -S -c <confine.py><this file>``, or as the code object of that source
(``session.BOOT``), so it needs nothing from the caller's file system, and talks to the supervisor
on fds 0/1, which it moves out of the way before any untrusted code runs: the supervisor sends
``marshal`` data (it is trusted): first the batch's settings (it confines itself on them), then a
solution, its tests, and an end message (after which the harness clears up and waits for the next
solution); the harness answers with plain length-prefixed byte fields (it is not, so the supervisor
never unmarshals anything).

It never decides a verdict and never sees expected outputs: per test it reports facts the
solution cannot forge, because they come from the kernel or from this process, which the
solution cannot reach (each child gets a seccomp filter and a Landlock domain of its own): the
exit status, CPU time and peak RSS from ``wait4``, and whether the harness itself killed the
test (CPU time, wall clock, output size). The solution's own exit path is CPython's (an uncaught
exception is exit status 1 whatever the solution did to ``os``). Standard library only; start-up
time is the per-solution overhead, so only cheap modules are imported up front.
"""

import _signal as signal  # the C module: `signal` would import enum (3 ms per start-up)
import gc
import io
import marshal
import os
import resource
import select
import struct
import sys
import time

if __name__ != "__main__":  # imported by the supervisor; in the sandbox confine.py's source comes first
    from branchmerge.sandbox.confine import (
        apply_landlock,
        apply_seccomp,
        as_fprog,
        become_subreaper,
        build_root,
        drop_capabilities,
        empty_dir,
        kill_all_program,
        landlock_abi,
        lock_down,
        scope_signals,
        seccomp_filter,
    )

# ---------------------------------------------------------------- protocol

CLEAR_FIELDS = ("state",)
READY_FIELDS = ("ready", "python", "landlock_abi", "seccomp", "rlimits", "root", "compile_error")
REPLY_FIELDS = ("killed", "stdout", "stderr", "result", "time_s", "cpu_s", "rss_kb", "exit", "error")
WALL_FACTOR, WALL_EXTRA_S = 3.0, 1.0  # the wall-clock cap of a test: 3x its CPU-time limit + 1 s


def wall_cap(cpu_limit_s):
    return WALL_FACTOR * cpu_limit_s + WALL_EXTRA_S


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


_DYNAMIC_ATTRS = {"__main__", "__dict__", "modules"}  # `import __main__`, `sys.modules[__name__].deque`
# the instructions that look a name up in the module's globals (LOAD_GLOBAL's argument is the name's
# index shifted left by one from 3.11 on: its low bit says whether a NULL is pushed too)
_GLOBAL_OPS = {
    "LOAD_GLOBAL": 1 if sys.version_info >= (3, 11) else 0,
    "LOAD_NAME": 0, "LOAD_FROM_DICT_OR_GLOBALS": 0, "DELETE_NAME": 0, "DELETE_GLOBAL": 0,
}  # fmt: skip


def code_names(code, ops=None):
    """The names ``code`` (and every function and class in it) reads or deletes as globals, read
    from its bytecode: ``x.split()`` does not make ``split`` a global use, so it does not pull in
    ``re`` for the prelude (~9 ms of start-up per solution). Names it reaches dynamically are
    covered by ``_DYNAMIC``. An interpreter whose bytecode this reading gets wrong on a probe, or
    an unreadable code object, gives all of ``co_names``, attributes included (as before)."""
    if ops is None:
        import opcode

        ops = {opcode.opmap[name]: shift for name, shift in _GLOBAL_OPS.items() if name in opcode.opmap}
        ops["extended"] = opcode.opmap.get("EXTENDED_ARG", opcode.EXTENDED_ARG)
        probe = compile("def f():\n    return g.h(i)\nj.k\n", "<probe>", "exec", dont_inherit=True)
        if code_names(probe, ops) != {"g", "i", "j"}:
            return _all_names(code)
    raw, names, arg = code.co_code, set(), 0
    try:
        for i in range(0, len(raw) - 1, 2):
            op, arg = raw[i], raw[i + 1] | (arg << 8)
            if op == ops["extended"]:
                continue
            if op in ops:
                names.add(code.co_names[arg >> ops[op]])
            arg = 0
    except IndexError:  # not the wordcode this scanner knows: keep every name
        names = set(code.co_names)
    if _DYNAMIC_ATTRS.intersection(code.co_names):
        names |= _DYNAMIC
    # the strings a class or module body has anyway: the qualnames of its functions and classes,
    # and the keys of its own names (``__annotations__['q']``)
    own = {c.co_qualname for c in code.co_consts if hasattr(c, "co_qualname")}.union(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= code_names(const, ops)
        elif isinstance(const, str) and const not in own:
            # a string annotation (or any under ``from __future__ import annotations``) is looked up
            # only when something evaluates it (typing.get_type_hints): its names count as used
            names.update(_identifiers(const))
    return names


# every ASCII character that cannot be part of an identifier, as a space
_NOT_IDENT = {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}


def _identifiers(text):
    """The identifiers in ``text``: a word of a string constant pulls in at worst a module the code
    does not need (start-up time), never leaves one out."""
    return [word for word in text[:4096].translate(_NOT_IDENT).split() if word.isidentifier()]


def _all_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _all_names(const)
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


# ---------------------------------------------------------------- limits every child enters


class Sandbox:
    """What the harness set up once, and applies in each child right after fork."""

    def __init__(self, job, abi, fprog):
        self.job, self.abi, self.fprog = job, abi, fprog
        self.streams, self.module = None, None

    def prepare(self, prelude):
        """A Python solution's standard streams (once per sandbox) and module (once per solution),
        made before the first fork: each child gets them as copies instead of building them
        (~0.3 ms a test, mostly page faults). The harness itself never uses them, so they are as
        new for every solution.
        The streams are made on fds of the kinds a test's child has (a seekable file on 0, a pipe
        on 1 and 2), so what they cached (seekable, position) is what they would have there."""
        if self.streams is None:
            self.streams = self._streams()
        module = type(sys)("__main__" if self.job["mode"] == "stdio" else "tmp_sol")
        g = module.__dict__
        g["__builtins__"] = __builtins__
        g.update(prelude)
        for name, stream in zip(("stdin", "stdout", "stderr"), self.streams):
            for key in (name, f"__{name}__"):
                if key in g:
                    g[key] = stream
        self.module = module

    @staticmethod
    def _streams():
        read_end, write_end = os.pipe()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        try:
            return (
                io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False))),
                io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False))),
                io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), line_buffering=True),
            )
        finally:
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            os.close(read_end)
            os.close(write_end)

    def enter(self, cpu_s, stack=None):
        """Own process group, CPU-time and address-space rlimits, a Landlock domain that may not
        signal the harness, and the seccomp filter's last rule (no kill(-1); the rest it inherits
        from the harness). In the child, before anything untrusted runs."""
        os.setpgid(0, 0)
        soft = int(cpu_s) + 2  # the harness stops it at cpu_s exactly; this is the backstop
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
        backstop = self.job["rlimit_as"]
        if backstop:
            resource.setrlimit(resource.RLIMIT_AS, (backstop, backstop))
        if stack:
            resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
        scope_signals(self.abi)
        if self.fprog is not None:
            apply_seccomp(self.fprog)

    def native(self):
        """A native program gets the default dispositions Python changed (SIGPIPE, SIGXFSZ)."""
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)


def _drain(fds, deadline, cap, tail=(), on_tick=None, exit_fd=None):
    """Read ``fds`` until the process behind ``exit_fd`` (a pidfd) exits (then only what is already
    buffered: a grandchild may hold the pipes open), or without one until EOF on all; or until
    the deadline, ``cap`` bytes in all, or ``on_tick()`` (called before every wait; returns a
    reason to stop, or the longest it may wait). Of the ``tail`` fds only the last 8 KiB are kept.
    Returns ({fd: bytes}, stop reason or '')."""
    data = {fd: bytearray() for fd in fds}
    total, open_fds = 0, set(fds)

    def take(fd, chunk):
        nonlocal total
        total += len(chunk)
        data[fd] += chunk
        if fd in tail and len(data[fd]) > 2 * 8192:
            del data[fd][:-8192]

    while open_fds or exit_fd is not None:
        wait = deadline - time.monotonic()
        if wait <= 0:
            return data, "wall"
        if on_tick is not None:
            tick = on_tick()
            if isinstance(tick, str):
                return data, tick
            wait = min(wait, tick)
        watched = list(open_fds) + ([exit_fd] if exit_fd is not None else [])
        ready = select.select(watched, [], [], wait)[0]
        if exit_fd is not None and exit_fd in ready:
            for fd in open_fds:
                os.set_blocking(fd, False)
                try:
                    while total <= cap:
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            break
                        take(fd, chunk)
                except BlockingIOError:
                    pass
            return data, "output" if total > cap else ""
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                take(fd, chunk)
            else:
                open_fds.discard(fd)
        if total > cap:
            return data, "output"
    return data, ""


# ---------------------------------------------------------------- C++: compiled once per solution

CXX = ["g++", "-O2", "-std=c++17", "-DONLINE_JUDGE", "-pipe", "-fmax-errors=20", "-o", "solution", "solution.cpp"]


def compile_cpp(box, source):
    """g++ in the working dir, under the same limits as a test (memory, processes, seccomp; CPU
    and wall time = the compile timeout). (binary path, '') or ('', what went wrong)."""
    with open("solution.cpp", "w") as f:
        f.write(source)
    timeout = float(box.job["compile_timeout_s"])
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": os.getcwd(), "LANG": "C.UTF-8"}
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.closerange(3, 1 << 16)
            box.enter(timeout)
            os.execvpe(CXX[0], CXX, env)
        finally:
            os._exit(127)  # the harness's own code: no untrusted code has run in this child
    os.close(out_w)
    pidfd = os.pidfd_open(pid)
    data, stop = _drain([out_r], time.monotonic() + timeout, 1 << 16, exit_fd=pidfd)
    os.close(pidfd)
    os.close(out_r)
    _kill_group(pid)
    status = os.wait4(pid, 0)[1]
    text = bytes(data[out_r]).decode("utf-8", "replace")
    if stop == "wall":
        return "", f"compilation timed out after {timeout:g}s"
    if stop == "output":
        return "", text + "\n(compiler output cut at 64 KiB)"
    if os.WIFSIGNALED(status):
        return "", f"the compiler was killed by signal {os.WTERMSIG(status)}\n{text[-2000:]}"
    if os.WEXITSTATUS(status) != 0:
        return "", text or f"g++ failed (exit status {os.WEXITSTATUS(status)})"
    return os.path.join(os.getcwd(), "solution"), ""


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# ---------------------------------------------------------------- one test in a forked child


def _solution_traceback(kind, exc, tb):
    """sys.excepthook of a test child: the harness's own frames say nothing about the solution."""
    while tb is not None and tb.tb_frame.f_code.co_filename != "<solution>":
        tb = tb.tb_next
    import traceback  # only a failing test pays for it

    traceback.print_exception(kind, exc, tb)


def _child(box, code_obj, stdin_fd, out_w, err_w, res_w, args):
    """Runs in the forked child and never returns. An uncaught exception of the solution is never
    caught here: it unwinds past every frame of the harness to CPython's top level, which prints it
    and exits with status 1, a decision no Python code of the solution can reach (replacing
    ``os._exit``, ``sys.excepthook`` or anything else changes nothing). Only a program that ended
    normally (or by ``exit``) reaches ``_normal_end``, whose status is 0 unless flushing fails."""
    job = box.job
    os.dup2(stdin_fd, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    if res_w is not None:
        os.dup2(res_w, 3)
    os.closerange(4 if res_w is not None else 3, 1 << 16)
    if job["language"] == "cpp":  # code_obj is the compiled binary's path
        mem = int(job["memory_mb"]) << 20
        box.enter(float(job["timeout_s"]), stack=mem)  # deep recursion, as judges allow
        box.native()
        os.execv(code_obj, [code_obj])
    box.enter(float(job["timeout_s"]))
    gc.enable()  # as a program run by python3 has it (the harness itself runs without it)
    sys.stdin = sys.__stdin__ = box.streams[0]
    sys.stdout = sys.__stdout__ = box.streams[1]
    sys.stderr = sys.__stderr__ = box.streams[2]
    sys.excepthook = _solution_traceback
    sys.setrecursionlimit(50000)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    module = box.module
    sys.modules[module.__name__] = module  # so pickle (multiprocessing) and `import __main__` find it
    g = module.__dict__
    ours = (sys.stdout, sys.stderr)
    try:
        exec(code_obj, g)
        if job["mode"] == "call":
            _call(job, g, args)
    except SystemExit:
        pass  # as LiveCodeBench's runner: exit(n) anywhere ends the program normally, whatever n
    _normal_end(g, ours)


def _normal_end(g, ours, _exit=os._exit):
    """What CPython does when a program ends normally, without tearing the interpreter down (that
    costs ~6 ms a test): wait for its non-daemon threads, run its atexit handlers, drop its globals
    (files it never closed are flushed as they go), flush stdout and stderr (status 120 if that
    fails, as CPython), then exit. Solution code that runs here (threads, handlers, ``__del__``)
    can only end the process itself, as it could under CPython; the status it would otherwise get
    is 0 or 120, never a crash made good."""
    status = 0
    threading = sys.modules.get("threading")
    for step in (getattr(threading, "_shutdown", None), _run_atexit, g.clear):
        try:
            if step is not None:
                step()
        except BaseException:  # CPython ignores them here too
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            status = 120
    for stream in ours:  # the harness's own wrappers, if the solution rebound sys.stdout/stderr
        try:
            if not stream.closed:
                stream.flush()
        except BaseException:  # as CPython: a wrapper it no longer uses is flushed quietly
            pass
    _exit(status)
    raise SystemExit(status)  # only if the solution replaced the default argument itself


def _run_atexit():
    import atexit  # a built-in module: no file to read

    atexit._run_exitfuncs()


def _call(job, g, args):
    """Call-based tests: the function's return value, as JSON, on fd 3."""
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


def _process_cpu_clock(pid):
    """The clock id of a process's CPU time (all its threads): what clock_getcpuclockid returns."""
    return ((~pid) << 3) | 2


def run_test(box, code_obj, message):
    job = box.job
    try:
        stdin_fd = os.memfd_create("stdin", 0)
        os.write(stdin_fd, message.get("stdin", "").encode("utf-8", "surrogatepass"))
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe() if job["mode"] == "call" else (None, None)
        start = time.monotonic()
        pid = os.fork()
    except OSError as exc:
        return harness_error(exc)
    if pid == 0:  # never returns; whatever it raises unwinds past every frame here
        _child(box, code_obj, stdin_fd, out_w, err_w, res_w, message.get("args", []))
    limit = float(job["timeout_s"])
    for fd in (stdin_fd, out_w, err_w, res_w):
        if fd is not None:
            os.close(fd)
    clock = _process_cpu_clock(pid)

    def cpu_left():
        try:
            used = time.clock_gettime(clock)
        except OSError:  # it has exited: the pipes' EOF follows
            return 0.05
        return "cpu" if used >= limit else max(limit - used, 0.005)

    streams = [fd for fd in (out_r, err_r, res_r) if fd is not None]
    pidfd = os.pidfd_open(pid)
    got, killed = _drain(streams, start + wall_cap(limit), int(job["output_limit"]), (err_r,), cpu_left, pidfd)
    os.close(pidfd)
    if killed:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
    _, wstatus, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    for fd in streams:
        os.close(fd)
    _clear_up(pid, job["confine"])
    return (
        killed,
        bytes(got[out_r]),
        bytes(got[err_r])[-4096:],
        bytes(got[res_r]) if res_r is not None else b"",
        round(wall, 4),
        round(usage.ru_utime + usage.ru_stime, 4),
        usage.ru_maxrss,
        os.waitstatus_to_exitcode(wstatus),
        "",
    )  # in the order of REPLY_FIELDS


def _clear_up(pid, conf):
    """Nothing of a test outlives it: its process group, then every process it left (``_kill_the_rest``)."""
    _kill_group(pid)
    _kill_the_rest(conf)


# /proc/self/task/<pid>/children, opened before Landlock shuts /proc (``confine``)
_CHILDREN_FD = None


def _own_children():
    """As the subreaper of every test, the harness's children are every process a solution left
    running, at some depth: the rest are their descendants, which come to us when their parent
    dies. None without the /proc file."""
    if _CHILDREN_FD is None:
        return None
    return [int(pid) for pid in os.pread(_CHILDREN_FD, 1 << 16, 0).split()]


def _kill_the_rest(conf, patience_s=2.0):
    """Kill and reap every process a test left: True when no child of ours is left. Killing our
    children level by level reaches the whole tree without a pid namespace or a uid of its own (a
    process cannot leave it: its orphans are ours), and a pid stays ours until we reap it, so no
    other process is hit. A SIGKILL lands a little after kill() returns; a zombie left over would
    count against the process limit and show to the next solution, so we wait (briefly) for them."""
    deadline = time.monotonic() + patience_s
    while True:
        if conf["kill_all"]:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        children = _own_children()
        for pid in children or ():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return True
        if (children is None and not conf["kill_all"]) or time.monotonic() > deadline:
            return False
        time.sleep(0.001)


_RESOURCE_ERRNOS = {12, 28, 11, 24, 23, 122}  # ENOMEM ENOSPC EAGAIN EMFILE ENFILE EDQUOT


def harness_error(exc):
    """A test the harness could not run: 'resources: ...' when what the solution holds (files in
    its tmpfs, memory, processes) is the likely cause, 'harness: ...' otherwise."""
    kind = "resources" if getattr(exc, "errno", None) in _RESOURCE_ERRNOS else "harness"
    return ("", b"", b"", b"", 0, 0, 0, 0, f"{kind}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- main


def confine(conf):
    """Every layer the supervisor asked for, before any untrusted byte is read."""
    layers = {"root": "host"}
    # orphans of a test come to us, not to the supervisor (the landlock tier has no pid namespace):
    # the harness reaps them after every test, so their zombies never pile up against the uid's
    # process limit while the sandbox serves solution after solution
    become_subreaper()
    if conf.get("root"):
        build_root(conf["root"])
        drop_capabilities()
        layers["root"] = "own"
    global _CHILDREN_FD
    try:
        _CHILDREN_FD = os.open(f"/proc/self/task/{os.getpid()}/children", os.O_RDONLY)
    except OSError:
        pass
    for name, value in conf["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    layers["rlimits"] = sorted(conf["rlimits"])
    lock_down()
    abi = landlock_abi() if conf["landlock"] else 0
    if abi:
        apply_landlock(abi, conf["read_paths"], conf["write_paths"])
    layers["landlock_abi"] = abi
    # kill(-1) reaches every process of our pid namespace or of a uid of our own; in a Landlock
    # domain scoped for signals (ABI >= 6) it reaches only our domain and the ones nested in it:
    # the sandbox's processes, even where we share the caller's uid. One call, atomic against fork
    conf["kill_all"] = conf["kill_all"] or abi >= 6
    # the filter goes on the harness itself, once: every child inherits it for free (attaching it
    # per test cost ~0.2 ms); only kill(-1), which the harness needs to clear up after a test, is
    # left to a tiny filter each child adds
    machine = os.uname().machine
    own = seccomp_filter(machine, conf["host_visible"], deny_kill_all=False) if conf["seccomp"] else None
    fprog = as_fprog(kill_all_program(machine)) if own is not None else None
    if own is not None:
        apply_seccomp(own)
    layers["seccomp"] = fprog is not None
    return layers, abi, fprog


def build(box, job):
    """The solution ready to fork: (code object, or the C++ binary's path; compile error or '')."""
    if job["language"] == "cpp":
        return compile_cpp(box, job["code"])
    try:
        code_obj = compile(job["code"], "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        import traceback

        return None, "".join(traceback.format_exception_only(type(exc), exc))[-2000:]
    if job["mode"] == "call":
        import json  # noqa: F401  (once here rather than in every test's child)
    import atexit  # noqa: F401  (a built-in module: _normal_end finds it without an import in the child)

    box.prepare(prelude_namespace(job["prelude"], code_names(code_obj)) if job.get("prelude") else {})
    return code_obj, ""


def serve(box, settings, ready, proto_in, proto_out):
    """One solution, from its code to the supervisor's end message: compiled once (a compile error
    goes in the ready message, and no test follows), then one child per test. True when the
    supervisor ended it (to hand this sandbox the next solution), False at EOF."""
    solution = recv(proto_in)  # code, mode, fn_name: read only once every layer is in place
    if solution is None:
        return False
    box.job = job = dict(settings, **solution)
    code_obj, error = build(box, job)
    send(proto_out, *ready, error)  # in the order of READY_FIELDS
    gc.freeze()  # what exists now is never traversed again: no collection dirties the pages forks share
    while True:
        message = recv(proto_in)
        if message is None:
            return False
        if "end" in message:
            return True
        if not error:
            send(proto_out, *run_test(box, code_obj, message))


def clear_solution(conf, scratch):
    """Between two solutions in one sandbox nothing of the first may reach the second: its processes
    (gone after every test already; once more), and every file it left in the writable dirs, whose
    modes are put back. (The rest of what a process could leave behind, SysV IPC, message queues
    and keyrings, seccomp denies in every tier.) 'clean', or what failed: the supervisor then
    closes this sandbox and starts a fresh one."""
    try:
        if not _kill_the_rest(conf):
            return "a process of the last solution would not die"
        for path, mode in scratch:
            if os.stat(path).st_mode != mode:
                os.chmod(path, mode)
            empty_dir(path)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "clean"


def main():
    # The harness makes no reference cycles worth collecting; its collections (a full one while
    # its code and ctypes are being set up, then one every few tests) cost ~3 ms a solution. Each
    # test's child turns the collector back on for the solution.
    gc.disable()
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    settings = recv(proto_in)  # the batch's: the sandbox may be started before its solutions are known
    if settings is None:
        return
    conf = settings["confine"]
    layers, abi, fprog = confine(conf)
    box = Sandbox(settings, abi, fprog)
    import builtins

    builtins.exit = builtins.quit = sys.exit  # ``python -S`` has no site to define them
    sys.path.extend(settings.get("site", []))
    ready = ["ready", sys.version.split()[0], abi, int(layers["seccomp"]), ",".join(layers["rlimits"]), layers["root"]]
    scratch = [(path, os.stat(path).st_mode) for path in conf["write_paths"] if os.path.isdir(path)]
    while serve(box, settings, ready, proto_in, proto_out):
        send(proto_out, clear_solution(conf, scratch))


if __name__ == "__main__":
    main()
