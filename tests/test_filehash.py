"""The sha256 cache: a digest is reused only while the file is provably unchanged."""

from __future__ import annotations

import hashlib
import os

from branchmerge.filehash import cache_file, sha256_files


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_digests_are_cached_and_recomputed_after_any_rewrite(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANCHMERGE_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(os.urandom(5 << 20))
    b.write_bytes(b"small")
    first, hashed = sha256_files([a, b])
    assert hashed == 2 and first == {str(a): _digest(a), str(b): _digest(b)}
    again, hashed = sha256_files([a, b])
    assert hashed == 0 and again == first

    # same size, mtime put back: ctime still moves, so the digest is not trusted
    st = a.stat()
    data = bytearray(a.read_bytes())
    data[123] ^= 0xFF
    a.write_bytes(bytes(data))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert a.stat().st_size == st.st_size and a.stat().st_mtime_ns == st.st_mtime_ns
    changed, hashed = sha256_files([a, b])
    assert hashed == 1 and changed[str(a)] == _digest(a) != first[str(a)] and changed[str(b)] == first[str(b)]

    # a file replaced by another one (new inode) at the same path
    b.unlink()
    b.write_bytes(b"SMALL")
    replaced, hashed = sha256_files([b])
    assert hashed == 1 and replaced[str(b)] == _digest(b)


def test_a_broken_or_unwritable_cache_only_costs_a_rehash(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights" * 1000)
    monkeypatch.setenv("BRANCHMERGE_CACHE", str(tmp_path / "cache"))
    cache_file().parent.mkdir(parents=True)
    cache_file().write_text("{not json")
    got, hashed = sha256_files([f])
    assert hashed == 1 and got[str(f)] == _digest(f)
    assert sha256_files([f])[1] == 0  # the broken file was replaced by a valid one

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("BRANCHMERGE_CACHE", str(blocker))
    got, hashed = sha256_files([f])
    assert hashed == 1 and got[str(f)] == _digest(f)
