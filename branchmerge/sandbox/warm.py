"""Sandboxes started ahead of their solutions, and torn down behind them.

Starting a sandbox is mostly waiting: the kernel's RCU grace period when the gated process joins
its memory cgroup (~8-11 ms on cgroup v1), bubblewrap's namespaces and mounts, the interpreter's
start-up. Torn down, it waits for its processes to die and its cgroup to empty. A worker that did
all this between two solutions would add it to every solution's wall time; here it happens on
background threads while the workers run tests, so the waits overlap instead of adding up.

``Launcher(start, total, ahead)`` starts ``ahead`` sandboxes (never more than the batch has
solutions); ``take()`` hands out the oldest and, when the sandbox it hands out cannot be reused,
starts another in its place; ``retire(session)`` closes one in the background. A prepared sandbox
holds its uid and cgroup but has run nothing of any solution; every one left over is closed by
``close()``, which also waits for every retirement.

A worker holds its sandbox in a ``Lease`` from one solution to the next while the sandbox can be
recycled (``Session.recycle``), and takes a fresh one when it cannot: with a reusable tier a batch
starts about one sandbox per worker instead of one per solution.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from branchmerge.sandbox.session import Session


class Launcher:
    def __init__(self, start: Callable[[], Session], total: int, ahead: int) -> None:
        self._start, self._left = start, total
        self._lock = threading.Lock()
        self._ready: deque[Future] = deque()
        self._retired: list[Future] = []
        # starts and teardowns both mostly wait (RCU, process exits): threads suffice
        self._pool = ThreadPoolExecutor(max_workers=max(ahead, 1) + 1, thread_name_prefix="sandbox-warm")
        with self._lock:
            for _ in range(min(max(ahead, 1), total)):
                self._submit()

    def _submit(self) -> None:
        self._left -= 1
        self._ready.append(self._pool.submit(self._start))

    def take(self) -> Session:
        """The next prepared sandbox (waiting for it if it is still starting); raises OSError if it
        could not be started. Starts another one in its place while the batch may need more: a
        sandbox that serves one solution only is replaced at once; a reusable one only when it
        is retired (rarely), so no spare is started for nothing."""
        with self._lock:
            if not self._ready:
                if self._left <= 0:
                    raise RuntimeError("more sandboxes taken than the batch has solutions")
                self._submit()
            future = self._ready.popleft()
        session = future.result()
        if not session.reusable:
            with self._lock:
                if self._left > 0:
                    self._submit()
        return session

    def retire(self, session: Session) -> None:
        """Close ``session`` in the background (its result has been read already)."""
        with self._lock:
            self._retired.append(self._pool.submit(session.close))

    def close(self) -> None:
        """Close what was prepared and never taken, and wait for every teardown."""
        with self._lock:
            left, self._ready = list(self._ready), deque()
            self._left = 0
        for future in left:
            try:
                future.result().close()
            except (OSError, RuntimeError):
                pass
        self._pool.shutdown(wait=True)
        for future in self._retired:
            try:
                future.result()
            except OSError:  # as before: a teardown error never costs the batch its results
                pass

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lease:
    """A worker's sandbox, kept from one solution to the next while it can be recycled."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher, self.session = launcher, None

    def take(self) -> Session:
        if self.session is None:
            self.session = self.launcher.take()
        return self.session

    def retire(self, session: Session) -> None:
        """After a solution: ready the sandbox for the next one, or close it (in the background)."""
        if not session.recycle():
            self.session = None
            self.launcher.retire(session)

    def close(self) -> None:
        if self.session is not None:
            self.launcher.retire(self.session)
            self.session = None
