"""Fixtures shared across test files."""

from __future__ import annotations

from pathlib import Path

import pytest

# Benchmark-shaped synthetic fixtures (never the shared real files: a plain clone has nothing beside it).
BENCHMARKS = Path(__file__).resolve().parent / "data" / "benchmarks"

TINY_CORPUS = [
    "What is 12 + 30? <think>\n12 + 30 = 42\n</think>\n\nThe answer is \\boxed{42}.",
    "def add(a, b):\n    return a + b\n",
    "Which gas do plants absorb? A) oxygen B) carbon dioxide C) helium D) neon. Answer: B",
] * 20


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """The sha256 cache (``branchmerge.filehash``) goes to a temporary folder, not the user's home."""
    import os

    before = os.environ.get("BRANCHMERGE_CACHE")
    os.environ["BRANCHMERGE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("BRANCHMERGE_CACHE", None)
    else:
        os.environ["BRANCHMERGE_CACHE"] = before


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen2 model with a tokenizer trained on a small corpus (built once per session)."""
    from branchmerge.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", TINY_CORPUS, vocab_size=400)


@pytest.fixture()
def bm(monkeypatch, capsys):
    """Run ``branchmerge ARGS`` through its real entry point (exit codes and one-line errors included),
    in-process: returns (exit code, stdout, stderr)."""
    import sys

    from branchmerge.cli import main

    def call(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["branchmerge", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
