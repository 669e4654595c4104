"""Worker functions for the verify pool tests (the pool imports them by name in a subprocess)."""

from __future__ import annotations

import signal
import time
from typing import Any


def echo(item: Any, timeout: float | None) -> Any:
    return item


def worker_pid(item: Any, timeout: float | None) -> int:
    """Which worker process ran the item (a short sleep so that both workers get busy)."""
    import os

    time.sleep(0.02)
    return os.getpid()


def hang_on_negative(item: int, timeout: float | None) -> int:
    """Stand-in for a check stuck in C code: ignores the timer signal and never returns."""
    if item < 0:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(1)
    return item * 2
