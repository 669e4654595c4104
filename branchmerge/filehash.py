"""sha256 of files, remembered across runs for files that have not changed.

Hashing is provenance, not work the user asked for: a 0.5B bf16 model is ~1 GB, and sha256 runs
at ~1.4 GB/s per core, so hashing three inputs costs a merge more CPU than the merge itself.
Merges are repeated on the same inputs (other methods, other densities), so a digest is kept
in ``$BRANCHMERGE_CACHE`` (default ``~/.cache/branchmerge``) under the file's real path with the
stat fields that change whenever its content can have changed: device, inode, size, mtime_ns and
ctime_ns (ctime cannot be set back by the writer, so a rewrite that restores size and mtime still
misses). Any problem with the cache file (unwritable home, corrupt JSON, a concurrent writer)
only means hashing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from branchmerge.atomic import write_json

log = logging.getLogger(__name__)

CACHE_ENV = "BRANCHMERGE_CACHE"
_LOCK = threading.Lock()


def cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "branchmerge"
    return Path(root) / "sha256.json"


def sha256_file(path: str | Path) -> str:
    """sha256 of one file, read into one reused 4 MiB buffer (hashlib releases the GIL)."""
    buf = bytearray(1 << 22)
    view = memoryview(buf)
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while got := fh.readinto(buf):
            h.update(view[:got])
    return h.hexdigest()


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load(cache: Path) -> dict[str, dict]:
    try:
        data = json.loads(cache.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def sha256_files(paths: list[Path], threads: int | None = None) -> tuple[dict[str, str], int]:
    """{str(path): sha256} for ``paths``, hashing in parallel only the files whose stat fields
    differ from the cached entry; also returns how many were hashed (the rest came from the cache)."""
    cache = cache_file()
    with _LOCK:
        known = _load(cache)
    result: dict[str, str] = {}
    todo: list[tuple[Path, str, list[int]]] = []
    for p in paths:
        real = os.path.realpath(p)
        stamp = _stamp(Path(real))
        entry = known.get(real)
        if isinstance(entry, dict) and entry.get("stat") == stamp and isinstance(entry.get("sha256"), str):
            result[str(p)] = entry["sha256"]
        else:
            todo.append((p, real, stamp))
    if not todo:
        return result, 0
    workers = max(1, min(len(todo), threads or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sha256") as pool:
        digests = list(pool.map(lambda item: sha256_file(item[0]), todo))
    for (p, real, stamp), digest in zip(todo, digests, strict=True):
        result[str(p)] = digest
        if _stamp(Path(real)) != stamp:  # changed while being read: the digest is not reusable
            continue
        known[real] = {"stat": stamp, "sha256": digest}
    with _LOCK:
        try:
            merged = {**_load(cache), **{k: v for k, v in known.items() if Path(k).exists()}}
            write_json(cache, merged)
        except OSError as exc:
            log.debug("sha256 cache %s not written: %s", cache, exc)
    return result, len(todo)
