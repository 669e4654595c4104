"""What config.json records so a number can be traced: model fingerprint, versions, git commit."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("branchmerge", "torch", "transformers", "vllm", "datasets", "math-verify", "latex2sympy2_extended", "httpx")
GRADER_PACKAGES = ("branchmerge", "math-verify", "latex2sympy2_extended")
SMALL_FILE = 64 << 20  # hashed whole below this size
EDGE = 1 << 20  # large weight files: size + first and last MiB (the safetensors header holds every offset)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the branchmerge checkout (None for an installed wheel), '+dirty' if modified."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "branchmerge"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def model_fingerprint(model: str) -> dict[str, Any]:
    """A content hash of a local model directory; a Hub id or served name is recorded as given.

    Small files (config, tokenizer, chat template) are hashed whole; weight files by size plus
    their first and last MiB, which covers the safetensors header, so any re-save, dtype change or
    different tensor set changes the hash without reading tens of GB.
    """
    path = Path(model)
    if not path.is_dir():
        return {"model": model, "local": False}
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        rel = p.relative_to(path).as_posix()
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with p.open("rb") as fh:
            if size <= SMALL_FILE:
                h.update(fh.read())
            else:
                h.update(fh.read(EDGE))
                fh.seek(size - EDGE)
                h.update(fh.read(EDGE))
    return {"model": str(path.resolve()), "local": True, "content_hash": h.hexdigest(), "files": len(files)}


def chat_template_hash(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return None
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]
