"""Decontamination: drop training problems that share a word n-gram with an evaluation benchmark.

The benchmark texts come from the evaluate module (``load_problems``), from the Hub or a local
file, never from a copy kept here. A benchmark that cannot be loaded is a loud warning recorded
in ``stats.json`` and the card, never a silent skip. N-grams that occur in more than half of a
benchmark's prompts (instruction boilerplate such as "Please reason step by step") are ignored,
so a shared prompt template alone never flags a problem.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from branchmerge.benchmarks import load_problems
from branchmerge.curate.textsig import WordIds, ngram_hashes
from branchmerge.network import offline


@dataclass
class BenchmarkIndex:
    """Sorted n-gram hashes of every loaded benchmark, and where each hash came from."""

    n: int
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    origin: dict[int, str] = field(default_factory=dict)  # hash -> "bench/problem-id"
    loaded: dict[str, int] = field(default_factory=dict)  # benchmark -> problems
    warnings: list[str] = field(default_factory=list)
    words: WordIds = field(default_factory=WordIds)

    def hits(self, text: str) -> str | None:
        """The first benchmark problem sharing an n-gram with ``text``, or None."""
        if not len(self.hashes):
            return None
        grams = ngram_hashes(self.words(text), self.n)
        at = np.minimum(np.searchsorted(self.hashes, grams), len(self.hashes) - 1)
        found = self.hashes[at] == grams
        if not found.any():
            return None
        return self.origin[int(grams[np.argmax(found)])]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``aime24`` | ``aime24=path.jsonl`` | ``path.jsonl`` -> (benchmark name, local data or None)."""
    name, sep, data = spec.partition("=")
    if sep:
        return name.strip(), data.strip()
    path = Path(spec)
    if path.suffix in (".jsonl", ".json", ".parquet") or path.exists():
        return path.stem, spec
    return spec, None


def check_specs(specs: list[str]) -> None:
    """Refuse a benchmark name the registry does not know, or a local file that is not there, before any
    work (a load that fails later for want of network is a loud warning instead: see ``build_index``)."""
    from branchmerge.benchmarks.registry import is_file_ref, resolve
    from branchmerge.errors import UserError

    for spec in specs:
        name, data = parse_spec(spec)
        if data is not None:
            if not Path(data).is_file():
                raise UserError(f"--decontam {spec}: {data} is not a file")
        elif not is_file_ref(name):
            resolve(name)  # an unknown name: one line with the valid ones


def build_index(specs: list[str], n: int) -> BenchmarkIndex:
    index = BenchmarkIndex(n)
    chunks: list[np.ndarray] = []
    failed: dict[str, str] = {}
    for spec in specs:
        name, data = parse_spec(spec)
        try:
            problems = load_problems(name, data=data)
        except Exception as exc:  # offline, gated, unknown name, missing module: all must be loud
            failed[name] = ("offline, and not in the Hugging Face cache" if offline() and data is None
                            else f"{type(exc).__name__}: {exc}")
            continue
        grams = [np.unique(ngram_hashes(index.words(p["prompt"]), n)) for p in problems]
        counts = Counter(h for g in grams for h in g.tolist())
        boiler = {h for h, c in counts.items() if len(grams) >= 10 and c > len(grams) / 2}
        for problem, g in zip(problems, grams, strict=True):
            keep = [h for h in g.tolist() if h not in boiler]
            for h in keep:
                index.origin.setdefault(h, f"{name}/{problem.get('id', '?')}")
            chunks.append(np.asarray(keep, dtype=np.uint64))
        index.loaded[name] = len(problems)
    if failed:  # one message for all of them: offline, the reason is the same four times
        reasons = list(dict.fromkeys(failed.values()))
        why = reasons[0] if len(reasons) == 1 else "; ".join(f"{n}: {r}" for n, r in failed.items())
        names = ", ".join(failed)
        index.warnings.append(f"decontamination against {names} SKIPPED: could not load "
                              f"{'it' if len(failed) == 1 else 'them'} ({why}); give local files with "
                              f"--decontam NAME=FILE, or --decontam none to skip it knowingly")
    if chunks:
        index.hashes = np.unique(np.concatenate(chunks))
    return index
