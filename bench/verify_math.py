"""Bench: our batch math verifier against a plain single-process math-verify loop, same pairs.

Pairs: every MATH-500 gold answer with ``--samples`` R1-style completions, drawn the way a real
n-sample evaluation looks: most samples give the gold answer, some spell it differently, and a
share ``--wrong-rate`` is wrong (off by one, a changed digit, a stray term). Ours: ``grade_rows`` (answer-segment extraction, fast paths, (gold, answer)
cache, process pool), started cold. Anchor: ``verify(parse("\\boxed{gold}"), parse(completion))``
per pair, math-verify defaults. Prints pairs/s for both, the ratio and every disagreement, for a
cold first batch and a warm second one.

    python bench/verify_math.py [--data ../shared/benchmarks/math500.jsonl] [--limit 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/benchmarks/math500.jsonl"
REASONING = "Let me set up the problem carefully and check each step before answering."


def _completion(answer: str) -> str:
    return f"<think>\n{REASONING}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."


def equivalents(gold: str) -> list[str]:
    """Right answers spelled differently from the gold (as models do)."""
    out = []
    if re.fullmatch(r"-?\d+", gold):
        out += [f"x = {gold}", f"{gold}.0"]
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", gold)
    if m:
        out.append(f"{m.group(1)}{m.group(2)}/{m.group(3)}")
    if "\\frac" in gold:
        out.append(gold.replace("\\frac", "\\dfrac"))
    if "," in gold:
        out.append(re.sub(r",\s*", ", ", gold) if ", " not in gold else gold.replace(", ", ","))
    if "\\left" in gold:
        out.append(gold.replace("\\left", "").replace("\\right", ""))
    out.append(f" {gold} ")
    return [e for e in dict.fromkeys(out) if e != gold][:2]


def wrongs(gold: str) -> list[str]:
    """Wrong answers close to the gold: off by one, sign, a changed digit."""
    if re.fullmatch(r"-?\d+", gold):
        n = int(gold)
        return [str(n + 1), str(-n if n else 7)]
    digit = re.search(r"\d", gold)
    changed = gold[: digit.start()] + str((int(digit.group()) + 1) % 10) + gold[digit.end():] if digit else None
    return [w for w in (changed, f"{gold}+1") if w][:2]


def build_pairs(
    golds: list[str], samples: int, wrong_rate: float, seed: int = 0, respell_rate: float = 0.25
) -> list[tuple[str, str]]:
    """``samples`` completions per gold, drawn with a fixed seed per problem: wrong with
    probability ``wrong_rate``, else a re-spelled right answer with ``respell_rate``, else the gold."""
    pairs = []
    for i, gold in enumerate(golds):
        rng = random.Random(seed * 1_000_003 + i)
        eq, wr = equivalents(gold), wrongs(gold)
        for _ in range(samples):
            roll = rng.random()
            if roll < wrong_rate:
                answer = rng.choice(wr)
            elif eq and roll < wrong_rate + respell_rate:
                answer = rng.choice(eq)
            else:
                answer = gold
            pairs.append((gold, _completion(answer)))
    return pairs


def plain_loop(pairs: list[tuple[str, str]]) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse(f"\\boxed{{{gold}}}"), parse(pred))) for gold, pred in pairs]


def ours(pairs: list[tuple[str, str]], workers: int) -> list[dict]:
    from branchmerge.verify import grade_rows

    rows = [{"domain": "math", "completion": pred, "reference": gold} for gold, pred in pairs]
    return grade_rows(rows, workers=workers, gold_format="latex")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=500, help="problems to use")
    ap.add_argument("--samples", type=int, default=8, help="completions per problem")
    ap.add_argument("--wrong-rate", type=float, default=0.16,
                    help="share of wrong samples (0.16: R1-Distill-Qwen-1.5B scores 83.9 on MATH-500)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    golds = [json.loads(line)["answer"] for line in args.data.open()][: args.limit]
    pairs = build_pairs(golds, args.samples, args.wrong_rate)
    print(f"{len(golds)} MATH-500 answers x {args.samples} completions ({args.wrong_rate:.0%} wrong) = "
          f"{len(pairs)} pairs ({len(set(pairs))} distinct)")
    cold = measure(pairs, args.workers, "cold: fresh workers, empty caches")
    # A second batch (new draws, verdict cache emptied) in the same process: our workers are
    # kept alive with warm parsers, and the plain loop's process is just as warm.
    from branchmerge.verify.grader import _CACHE

    _CACHE.clear()
    warm = measure(build_pairs(golds, args.samples, args.wrong_rate, seed=1), args.workers,
                   "warm: second batch, verdict cache emptied")
    print(f"ratio: cold {cold:.1f}x, warm {warm:.1f}x")


def _workers_cpu() -> dict[int, float]:
    """CPU seconds used so far by each kept-alive grading worker (from /proc)."""
    from branchmerge.verify.grader import _POOLS

    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pool in _POOLS.values():
        for slot in pool.slots:
            fields = Path(f"/proc/{slot.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[slot.proc.pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def measure(pairs: list[tuple[str, str]], workers: int, label: str) -> float:
    before = _workers_cpu()
    start, cpu = time.perf_counter(), time.process_time()
    graded = ours(pairs, workers)
    t_ours, cpu_ours = time.perf_counter() - start, time.process_time() - cpu
    cpu_ours += sum(v - before.get(pid, 0.0) for pid, v in _workers_cpu().items())
    start, cpu = time.perf_counter(), time.process_time()
    anchor = plain_loop(pairs)
    t_plain, cpu_plain = time.perf_counter() - start, time.process_time() - cpu

    rules: dict[str, int] = {}
    for row in graded:
        rule = row["verdict_detail"]["rule"] + (" (cached)" if row["verdict_detail"].get("cached") else "")
        rules[rule] = rules.get(rule, 0) + 1
    print(f"[{label}]")
    print(f"  plain math-verify loop: {len(pairs) / t_plain:8.1f} pairs/s ({t_plain:.2f} s wall, "
          f"{cpu_plain:.2f} s CPU, 1 process)")
    print(f"  branchmerge grade_rows: {len(pairs) / t_ours:8.1f} pairs/s ({t_ours:.2f} s wall, "
          f"{cpu_ours:.2f} s CPU incl. workers, {workers} workers)")
    print(f"  ratio: {t_plain / t_ours:.1f}x wall, {cpu_plain / cpu_ours:.1f}x CPU "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("  how ours decided:", ", ".join(f"{k}={v}" for k, v in sorted(rules.items(), key=lambda kv: -kv[1])))
    seen = set()
    disagreements = []
    for (gold, _), row, plain in zip(pairs, graded, anchor):
        if (row["verdict"] == "correct") != plain:
            disagreements.append((gold, row["verdict_detail"].get("extracted"), row["verdict"], plain,
                                  row["verdict_detail"]["rule"]))
    print(f"  disagreements: {len(disagreements)} pairs ({len(set(disagreements))} distinct)")
    for gold, extracted, verdict, plain, rule in disagreements:
        if (gold, extracted) not in seen:
            seen.add((gold, extracted))
            print(f"    gold={gold!r} answer={extracted!r}: ours={verdict} ({rule}), "
                  f"plain={'correct' if plain else 'incorrect'}")
    return t_plain / t_ours


if __name__ == "__main__":
    main()
