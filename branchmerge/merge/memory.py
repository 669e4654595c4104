"""Peak memory of a process, split into anonymous memory and file-backed (mapped) pages.

``VmHWM`` alone mixes the two; memory-mapped weights show up as reclaimable file pages, so the
number that matters for "does it fit" is the anonymous peak. Linux only (``/proc``); elsewhere
the sampler reports nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

_FIELDS = {"RssAnon": "rss_anon", "RssFile": "rss_file", "RssShmem": "rss_shmem", "VmRSS": "rss", "VmHWM": "vm_hwm"}


def read_status(pid: int | str = "self") -> dict[str, int]:
    """Current RssAnon/RssFile/RssShmem/VmRSS/VmHWM of ``pid`` in bytes ({} if unavailable)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in _FIELDS:
            out[_FIELDS[key]] = int(rest.split()[0]) * 1024
    return out


class MemorySampler:
    """Samples ``/proc/<pid>/status`` on a thread and keeps the peak of each field."""

    def __init__(self, pid: int | str = "self", interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        for k, v in read_status(self.pid).items():
            if v > self.peak.get(k, 0):
                self.peak[k] = v

    def stop(self) -> dict[str, int]:
        """Stop sampling; return ``{field}_peak_bytes`` for each field seen."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        return {f"{k}_peak_bytes": v for k, v in self.peak.items()}
