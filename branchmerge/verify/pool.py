"""A process pool whose every item has a wall-clock deadline the parent enforces.

``concurrent.futures`` cannot take back a task that hangs, and math-verify's own time-out only
works on a main thread. Here each worker runs items one at a time (its own interval timer
interrupts slow Python code) and reports after every item; if a worker stays silent past
``timeout + grace`` (stuck in C code, out of memory, killed) the parent kills it, records the
item it was on, re-queues the rest of its chunk and starts a fresh worker.

Workers are plain ``python -m branchmerge.verify.pool`` subprocesses (about 0.4 s to start):
unlike multiprocessing's fork they are safe when the caller has threads, and unlike spawn and
forkserver they never re-import the caller's ``__main__``, so a script without an
``if __name__ == "__main__"`` guard works too.
"""

from __future__ import annotations

import importlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

DEFAULT_MEMORY_BYTES = 4 << 30


def _resolve(ref: str) -> Callable[[Any, float | None], Any]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve() -> None:
    """Worker side: stdin brings (function, timeout, memory), then chunks; results go back on
    the pipe named by ``BRANCHMERGE_POOL_FD``."""
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the batch and its
    # workers; a worker must not die of it on its own (a traceback per worker, items lost as crashes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = Connection(0, writable=False)
    outbox = Connection(int(os.environ["BRANCHMERGE_POOL_FD"]), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the result channel
    ref, timeout, memory = inbox.recv()
    if memory:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        except (ValueError, OSError):
            pass  # a lower hard limit is already in place
    fn = _resolve(ref)
    warm_up = getattr(sys.modules[fn.__module__], "warm_up", None)
    if warm_up is not None:
        warm_up()  # one-time imports must not eat into the first item's time limit
    while True:
        try:
            chunk = inbox.recv()
        except EOFError:
            return
        if chunk is None:
            return
        for index, item in chunk:
            outbox.send((index, fn(item, timeout)))


class _Slot:
    def __init__(self, ref: str, timeout: float | None, memory: int) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "branchmerge.verify.pool"],
            stdin=to_child_r,
            pass_fds=(from_child_w,),
            # the caller's import path, so the worker finds what the caller found
            env={**os.environ, "BRANCHMERGE_POOL_FD": str(from_child_w),
                 "PYTHONPATH": os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)},
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.conn = Connection(from_child_r, writable=False)
        self.send_conn.send((ref, timeout, memory))
        self.pending: deque[int] = deque()
        self.deadline = float("inf")

    def close(self, kill: bool) -> None:
        if not kill:
            try:
                self.send_conn.send(None)
            except OSError:
                kill = True
        if kill:
            self.proc.kill()
        self.proc.wait()  # an idle worker exits at once on None; a killed one at once too
        self.send_conn.close()
        self.conn.close()


class WorkerPool:
    """Workers that outlive one batch: later batches skip the start-up and find warm caches
    (math-verify's parser gets much faster once its ANTLR decision tables have filled).

    ``map`` is not re-entrant; ``lock`` lets callers share one pool between threads.
    """

    def __init__(self, fn: str, workers: int = 2, timeout: float | None = 5.0, grace: float = 5.0,
                 memory: int = DEFAULT_MEMORY_BYTES) -> None:
        self.fn, self.workers, self.timeout, self.memory = fn, max(1, workers), timeout, memory
        self.limit = (timeout + grace) if timeout else float("inf")
        self.slots: list[_Slot] = []
        self.affinity: dict[Hashable, int] = {}  # chunk key -> the worker that last ran it
        self.lock = threading.Lock()

    def _start(self) -> _Slot:
        return _Slot(self.fn, self.timeout, self.memory)

    def map(
        self,
        items: Sequence[Any],
        on_lost: Callable[[Any, str], Any],
        on_result: Callable[[int, Any], None] | None = None,
        chunks: Sequence[Sequence[int]] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> list[Any]:
        """``[f(item, timeout) for item in items]``, order kept. ``on_lost(item, why)`` makes the
        result for an item whose worker was killed (``"timeout"``) or died (``"worker_died"``).

        ``chunks`` (indices into ``items``, each once) says which items go to a worker together, in
        the order they are handed out; by default, equal runs of consecutive items. ``keys`` (one
        per chunk) sends a chunk back to the worker that ran the last chunk with the same key, in
        this batch or an earlier one: its caches are warm for it. A free worker takes its own such
        chunks first, then the next chunk no worker has a claim on, then the last chunk another
        worker holds."""
        results: list[Any] = [None] * len(items)
        if not items:
            return results
        workers = min(self.workers, len(items))
        if chunks is None:
            size = max(1, min(64, len(items) // (workers * 8)))
            chunks = [range(i, min(i + size, len(items))) for i in range(0, len(items), size)]
        if len(self.affinity) > 200_000:
            self.affinity.clear()
        slots = self.slots
        own: list[deque[tuple[Hashable, list[int]]]] = [deque() for _ in range(max(workers, len(slots)))]
        shared: deque[tuple[Hashable, list[int]]] = deque()
        for k, chunk in enumerate(chunks):
            if len(chunk):
                key = keys[k] if keys is not None else None
                where = self.affinity.get(key) if key is not None else None
                (own[where] if where is not None and where < len(own) else shared).append((key, list(chunk)))

        def feed(i: int) -> None:
            slot = slots[i]
            if slot.pending:
                return
            if own[i]:
                key, chunk = own[i].popleft()
            elif shared:
                key, chunk = shared.popleft()
            else:
                other = max(own, key=len)
                if not other:
                    return
                key, chunk = other.pop()
            if key is not None:
                self.affinity[key] = i
            slot.send_conn.send([(k, items[k]) for k in chunk])
            slot.pending.extend(chunk)
            slot.deadline = time.monotonic() + self.limit

        def replace(i: int, why: str) -> None:
            slot = slots[i]
            slot.close(kill=True)
            lost = slot.pending.popleft()
            results[lost] = on_lost(items[lost], why)
            if on_result:
                on_result(lost, results[lost])
            if slot.pending:
                own[i].appendleft((None, list(slot.pending)))
            for key in [key for key, where in self.affinity.items() if where == i]:
                del self.affinity[key]  # a fresh worker has learned nothing
            slots[i] = self._start()
            feed(i)

        try:
            while len(slots) < min(workers, len(shared) + sum(map(len, own))):
                slots.append(self._start())
            for i in range(len(slots)):
                feed(i)
            while any(slot.pending for slot in slots):
                busy = {slot.conn: i for i, slot in enumerate(slots) if slot.pending}
                soonest = min(slots[i].deadline for i in busy.values())
                wait_s = None if soonest == float("inf") else max(0.0, soonest - time.monotonic())
                ready = wait(list(busy), timeout=wait_s)
                for conn in ready:
                    i = busy[conn]
                    try:
                        index, result = conn.recv()
                    except (EOFError, OSError):
                        replace(i, "worker_died")
                        continue
                    results[index] = result
                    slots[i].pending.remove(index)
                    slots[i].deadline = time.monotonic() + self.limit
                    if on_result:
                        on_result(index, result)
                    feed(i)
                now = time.monotonic()
                for i, slot in enumerate(slots):
                    if slot.pending and slot.deadline <= now and slot.conn not in ready:
                        replace(i, "timeout")
        except BaseException:
            self.close()  # workers mid-chunk cannot be reused (interrupt, broken pipe)
            raise
        return results

    def close(self) -> None:
        for slot in self.slots:
            slot.close(kill=bool(slot.pending))
        self.slots = []
        self.affinity.clear()


def run_pool(
    fn: str,
    items: Sequence[Any],
    on_lost: Callable[[Any, str], Any],
    workers: int = 2,
    timeout: float | None = 5.0,
    grace: float = 5.0,
    memory: int = DEFAULT_MEMORY_BYTES,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """One batch on a fresh ``WorkerPool`` (``fn`` names a module-level function as
    ``"package.module:name"``; it should enforce ``timeout`` itself where it can)."""
    pool = WorkerPool(fn, workers, timeout, grace, memory)
    try:
        return pool.map(items, on_lost, on_result)
    finally:
        pool.close()


if __name__ == "__main__":
    _serve()
