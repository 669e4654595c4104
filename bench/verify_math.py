"""Bench: our batch math verifier against a plain single-process math-verify loop, same pairs.

Two modes (``--mode``, default both):

- ``speed``: pairs shaped like curation (``--shape curation``, the default): thousands of mostly
  distinct pairs, every MATH-500 gold with ``--samples`` R1-style completions, each with its own
  reasoning of about ``--reasoning-chars`` characters (built from problem statements, so it holds
  LaTeX and numbers like a real trace) closed by ``</think>``, then a short answer; most samples
  give the gold, some spell it differently, a share ``--wrong-rate`` is wrong (off by one, a
  changed digit, a stray term). ``--shape eval`` is the n-sample evaluation shape (short
  completions, the same answer repeated). Ours: ``grade_rows`` (answer-segment extraction, fast
  paths, (gold, answer) cache, process pool), started cold. Anchor: ``verify(parse(
  "\\boxed{gold}"), parse(completion))`` per pair, math-verify defaults. Prints pairs/s for both,
  the ratio and every disagreement, for a cold first batch and a warm second one.
- ``peer``: the cases other projects publish as their own test suites (Math-Verify, lighteval,
  open-r1; ``tests/data/verify/peer_suites.jsonl``) at default settings: agreement with their
  labels for ours (each prediction after a closed ``</think>``, the gold reduced to a bare answer)
  and for plain ``verify(parse(gold), parse(pred))`` (the suite's gold as written), side by side
  with false positives and negatives, per suite, and every case where the two differ.

    python bench/verify_math.py [--mode speed|peer|both] [--data ../shared/benchmarks/math500.jsonl]
        [--limit 500] [--samples 4] [--reasoning-chars 4000] [--workers 2]
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
PEER_DATA = Path(__file__).resolve().parents[1] / "tests/data/verify/peer_suites.jsonl"
REASONING = "Let me set up the problem carefully and check each step before answering."


def _completion(answer: str, reasoning: str = REASONING) -> str:
    return f"<think>\n{reasoning}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."


def _reasoning(problems: list[str], rng: random.Random, chars: int) -> str:
    """A distinct reasoning trace of about ``chars`` characters: problem statements (LaTeX,
    numbers) and working lines, in a random order, as R1 traces restate and compute."""
    parts, size, step = [], 0, 0
    while size < chars:
        step += 1
        text = f"Step {step}: consider {rng.choice(problems)} So {rng.randint(2, 99)} + {rng.randint(2, 99)} gives a check."
        parts.append(text.replace("\\boxed", "\\fbox"))
        size += len(text) + 1
    return "\n".join(parts)[:chars]


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
    golds: list[str], samples: int, wrong_rate: float, seed: int = 0, respell_rate: float = 0.25,
    problems: list[str] | None = None, reasoning_chars: int = 0,
) -> list[tuple[str, str]]:
    """``samples`` completions per gold, drawn with a fixed seed per problem: wrong with
    probability ``wrong_rate``, else a re-spelled right answer with ``respell_rate``, else the gold.
    With ``problems`` and ``reasoning_chars``, each completion gets its own reasoning trace."""
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
            reasoning = _reasoning(problems, rng, reasoning_chars) if problems and reasoning_chars else REASONING
            pairs.append((gold, _completion(answer, reasoning)))
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
    ap.add_argument("--mode", choices=("speed", "peer", "both"), default="both")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--peer-data", type=Path, default=PEER_DATA)
    ap.add_argument("--shape", choices=("curation", "eval"), default="curation")
    ap.add_argument("--limit", type=int, default=500, help="problems to use")
    ap.add_argument("--samples", type=int, default=None, help="completions per problem (curation 4, eval 8)")
    ap.add_argument("--reasoning-chars", type=int, default=4000,
                    help="curation shape: characters of reasoning per completion (~1.1k tokens)")
    ap.add_argument("--wrong-rate", type=float, default=0.16,
                    help="share of wrong samples (0.16: R1-Distill-Qwen-1.5B scores 83.9 on MATH-500)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.mode in ("peer", "both"):
        peer(args.peer_data, args.workers)
    if args.mode in ("speed", "both"):
        speed(args)


def speed(args: argparse.Namespace) -> None:
    records = [json.loads(line) for line in args.data.open()][: args.limit]
    golds, problems = [r["answer"] for r in records], [r["problem"] for r in records]
    curation = args.shape == "curation"
    samples = args.samples or (4 if curation else 8)
    extra = {"problems": problems, "reasoning_chars": args.reasoning_chars} if curation else {}
    pairs = build_pairs(golds, samples, args.wrong_rate, **extra)
    answers = {(g, c.rpartition("</think>")[2]) for g, c in pairs}
    mean_chars = sum(len(c) for _, c in pairs) / len(pairs)
    print(f"\n== speed ({args.shape} shape) ==\n{len(golds)} MATH-500 answers x {samples} completions "
          f"({args.wrong_rate:.0%} wrong, {mean_chars:.0f} chars each) = {len(pairs)} pairs "
          f"({len(set(pairs))} distinct, {len(answers)} distinct (gold, answer))")
    startup = fresh_workers(args.workers)
    print(f"grading workers started afresh: {startup:.2f} s (math-verify and sympy imported in each; once per "
          "process, not per batch: not in the figures below, as the plain loop's import is not in its own)")
    cold = measure(pairs, args.workers, "cold: fresh workers, empty caches")
    # A second batch (new draws, verdict cache emptied) in the same process: our workers are
    # kept alive with warm parsers, and the plain loop's process is just as warm.
    from branchmerge.verify.grader import _CACHE

    _CACHE.clear()
    warm = measure(build_pairs(golds, samples, args.wrong_rate, seed=1, **extra), args.workers,
                   "warm: second batch, verdict cache emptied")
    print(f"ratio: cold {cold:.1f}x, warm {warm:.1f}x (load average now {os.getloadavg()[0]:.1f})")


def fresh_workers(workers: int) -> float:
    """Stop any kept-alive grading workers (an earlier mode warmed them) and start new ones: seconds
    until they have answered a first full check each (their imports done, their caches empty)."""
    from branchmerge.verify import grade_rows
    from branchmerge.verify.grader import close_pools

    close_pools()
    start = time.perf_counter()
    grade_rows([{"domain": "math", "completion": f"<think>.</think> $\\boxed{{1+y^{{{k}}}}}$",
                 "reference": f"y^{{{k}}}+1"} for k in range(2, 2 + 2 * workers)], workers=workers, gold_format="latex")
    return time.perf_counter() - start


def peer(path: Path, workers: int) -> None:
    """Agreement with other projects' own labels, ours and plain math-verify side by side."""
    from math_verify import parse, verify

    from branchmerge.verify import grade_rows

    cases = [c for c in map(json.loads, path.open(encoding="utf-8")) if c["default_settings"]]
    rows = [{"domain": c["domain"], "completion": f"<think>\n{REASONING}\n</think>\n\n{c['pred']}",
             "reference": c["gold"]} for c in cases]
    start = time.perf_counter()
    graded = grade_rows(rows, workers=workers)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    plain = []
    for c in cases:
        try:
            plain.append(bool(verify(parse(c["gold_raw"]), parse(c["pred"]))))
        except Exception:  # a crash in the anchor is its verdict: not equal
            plain.append(False)
    t_plain = time.perf_counter() - start
    ours = [r["verdict"] == "correct" for r in graded]
    print(f"\n== peer suites ({path.name}: {len(cases)} cases at default settings) ==")
    print(f"{'':26}{'cases':>6}{'ours':>16}{'FP':>4}{'FN':>4}{'math-verify':>18}{'FP':>4}{'FN':>4}")
    groups = [("all", cases)] + [(f"  {s}", [c for c in cases if c["suite"] == s])
                                 for s in sorted({c["suite"] for c in cases})]
    groups += [(f"  split={s}", [c for c in cases if c["split"] == s]) for s in ("dev", "holdout")]
    index = {c["id"]: i for i, c in enumerate(cases)}
    for name, group in groups:
        idx = [index[c["id"]] for c in group]
        line = f"{name:26}{len(idx):>6}"
        for got in (ours, plain):
            agree = sum(got[i] == bool(cases[i]["expected"]) for i in idx)
            fp = sum(got[i] and not cases[i]["expected"] for i in idx)
            fn = sum(not got[i] and cases[i]["expected"] for i in idx)
            line += f"{agree:>8} ({agree / len(idx):5.1%}){fp:>4}{fn:>4}"
        print(line)
    print(f"time: ours {t_ours:.2f} s ({workers} workers), plain {t_plain:.2f} s")
    print("cases where ours and math-verify differ (label = the suite's expectation):")
    for i, c in enumerate(cases):
        if ours[i] != plain[i] or ours[i] != bool(c["expected"]):
            d = graded[i]["verdict_detail"]
            mark = "ours right" if ours[i] == bool(c["expected"]) else "OURS WRONG"
            print(f"  [{mark}] {c['id']} label={c['expected']} ours={graded[i]['verdict']}"
                  f" ({d.get('extract_rule', '')}/{d.get('rule')}: {str(d.get('extracted'))[:40]!r})"
                  f" plain={int(plain[i])} gold={c['gold'][:40]!r} pred={c['pred'][-60:]!r}")


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
