"""Throughput of the post-teacher curation pipeline on replayed OpenR1-Math-style rows at R1 length.

Synthesizes 4k problems (source rows) with two R1-style generations each (~15k characters, a third of
the second ones wrong, some exact and near-duplicate problems, a few copied from AIME), then runs
``curate`` with the replay teacher, the paper's 16,384 student-token limit and a byte-level BPE student
tokenizer, and reports source rows/s and traces/s of verify + format + length + dedup + decontam +
select (start-up, i.e. imports and the tokenizer load, excluded) and the share of each stage. The
anchor is the issue's target: >= 500 source rows/s (1,000 traces/s) on this machine, with its load. The
near-duplicate stage is also timed against datasketch's MinHash + MinHashLSH (same shingles,
permutations and threshold) when datasketch is installed (a bench-only tool, not a dependency).

    python bench/curate.py [--rows 8000] [--chars 15000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_ROWS_PER_S = 500.0  # source rows (problems) per second
TARGET_TRACES_PER_S = 1000.0
POST_TEACHER = ("verify", "format", "length", "dedup", "decontam", "select")
BENCH_FILES = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
WORDS = ("we note that the sum of both sides gives a relation between terms so substituting back yields "
         "consider factor check again wait maybe compute carefully equation value integer hence").split()
NAMES = ["triangle", "circle", "sequence", "polynomial", "function", "matrix", "prime", "graph", "set", "digit"]
ANSWERS = [lambda r: str(r.randint(1, 999)), lambda r: f"\\frac{{{r.randint(1, 20)}}}{{{r.randint(21, 40)}}}",
           lambda r: f"{r.randint(2, 9)}\\sqrt{{{r.choice([2, 3, 5, 7])}}}", lambda r: f"{r.randint(1, 9)}\\pi"]


def problem_text(rng: random.Random, i: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
    return f"Let the {rng.choice(NAMES)} number {i} satisfy {words}. Find the value of x_{i}."


def reasoning(rng: random.Random, chars: int) -> str:
    lines, size = [], 0
    target = rng.randint(chars // 2, chars * 3 // 2)
    while size < target:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + f" = {rng.randint(0, 10**6)}."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def synthesize(path: Path, rows: int, chars: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    aime = [json.loads(x)["problem"] for x in (BENCH_FILES / "aime24.jsonl").read_text().splitlines()] \
        if (BENCH_FILES / "aime24.jsonl").exists() else []
    problems = rows // 2
    with path.open("w", encoding="utf-8") as fh:
        for i in range(problems):
            answer = ANSWERS[i % len(ANSWERS)](rng)
            text = problem_text(random.Random(i), i)
            if i % 97 == 5:
                text = problem_text(random.Random(i - 1), i - 1).upper()  # an exact copy of an earlier problem
            elif i % 89 == 3:  # a near copy: one word of an earlier problem changed
                text = problem_text(random.Random(i - 2), i - 2).replace(" the ", " a ", 1)
            elif aime and i % 499 == 7:
                text = aime[i % len(aime)]
            gens = []
            for k in range(2):
                shown = answer if (k == 0 or i % 3) else f"{answer}+1"
                gens.append(f"<think>\n{reasoning(rng, chars)}\n</think>\n\nSo the answer is $\\boxed{{{shown}}}$.")
            fh.write(json.dumps({
                "problem": text, "solution": "", "answer": answer, "problem_type": "Algebra",
                "question_type": "math-word-problem", "source": "synthetic", "uuid": f"u{i}",
                "generations": gens, "correctness_math_verify": [True, bool(i % 3)],
                "finish_reasons": ["stop", "stop"], "is_reasoning_complete": [True, True],
            }) + "\n")
    return problems * 2


def dedup_anchor(texts: list[str], perms: int = 128, threshold: float = 0.8, k: int = 5) -> None:
    """Our numpy MinHash LSH against datasketch's on the same problem texts."""
    from branchmerge.curate.dedup import find_duplicates
    from branchmerge.curate.textsig import normalized

    start = time.perf_counter()
    ours = set(find_duplicates(texts, threshold, perms, k))
    t_ours = time.perf_counter() - start
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        print(f"dedup on {len(texts)} problems: ours {t_ours:.2f}s; anchor datasketch not installed")
        return
    start = time.perf_counter()
    lsh, theirs = MinHashLSH(threshold=threshold, num_perm=perms), set()
    for i, text in enumerate(texts):
        words = normalized(text).split()
        m = MinHash(num_perm=perms)
        m.update_batch([" ".join(words[j : j + k]).encode() for j in range(max(1, len(words) - k + 1))])
        if lsh.query(m):
            theirs.add(i)
        else:
            lsh.insert(str(i), m)
    t_anchor = time.perf_counter() - start
    print(f"dedup on {len(texts)} problems: ours {t_ours:.2f}s, datasketch {t_anchor:.2f}s, "
          f"speed-up {t_anchor / t_ours:.1f}x; duplicates found: ours {len(ours)}, datasketch {len(theirs)}, "
          f"both {len(ours & theirs)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8000, help="traces (two per source row)")
    parser.add_argument("--chars", type=int, default=15000, help="mean reasoning length in characters")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-tokenizer", action="store_true", help="skip the student-token length stage")
    args = parser.parse_args()

    from branchmerge.curate import CurateConfig, curate
    from branchmerge.tiny import train_tokenizer

    work = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    try:
        src = work / "openr1.jsonl"
        t0 = time.perf_counter()
        n = synthesize(src, args.rows, args.chars)
        print(f"synthesized {n} rows ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
        tok_dir = None
        if not args.no_tokenizer:
            tok_dir = work / "tok"
            sample = [line for _, line in zip(range(200), src.open(), strict=False)]
            train_tokenizer(sample, vocab_size=4096).save_pretrained(tok_dir)
        decontam = [f"{b}={BENCH_FILES / b}.jsonl" for b in ("aime24", "aime25", "amc23", "math500")
                    if (BENCH_FILES / f"{b}.jsonl").exists()]
        cfg = CurateConfig(domain="math", source=str(src), out=str(work / "out"), teacher="replay",
                           workers=args.workers, decontam=decontam, select="first",
                           student_tokenizer=str(tok_dir) if tok_dir else None,
                           max_tokens_length=16384 if tok_dir else None)
        start = time.perf_counter()
        curate(cfg)
        wall = time.perf_counter() - start
        stats = json.loads((work / "out" / "stats.json").read_text())
        dedup_anchor([json.loads(line)["problem"] for line in src.open(encoding="utf-8")])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    timings = stats["timings_s"]
    post = sum(timings.get(s, 0.0) for s in POST_TEACHER)
    rate, sources = n / post, n / 2 / post
    import os

    print(f"\ntraces {n} ({n // 2} source rows), kept {stats['rows']}, wall {wall:.1f}s (all stages), "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'stage':<10}{'seconds':>10}{'share of post-teacher':>24}")
    for stage, secs in timings.items():
        share = f"{100 * secs / post:.1f}%" if stage in POST_TEACHER else "(not post-teacher)"
        print(f"{stage:<10}{secs:>10.2f}{share:>24}")
    top = max(POST_TEACHER, key=lambda s: timings.get(s, 0.0))
    print(f"token statistics: {stats['token_lengths'].get('measure')}")
    print(f"\npost-teacher: {sources:.0f} source rows/s ({rate:.0f} traces/s)   anchor (issue target): "
          f"{TARGET_ROWS_PER_S:.0f} source rows/s ({TARGET_TRACES_PER_S:.0f} traces/s)   ratio "
          f"{sources / TARGET_ROWS_PER_S:.2f}x   dominated by: {top}")
    print("funnel:", {s["stage"]: s["reasons"] for s in stats["funnel"] if s["reasons"]})
    return 0 if sources >= TARGET_ROWS_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
