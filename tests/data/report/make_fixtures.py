"""Regenerate the stored report fixtures: three models' evaluation results and one curation,
training and merge output each, in the on-disk shapes of issues 4-7.

The samples are synthetic but internally consistent: every summary number is computed from the
samples written beside it. Run from the repository root: ``python tests/data/report/make_fixtures.py``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
MAX_TOKENS = 32768
# model -> bench -> per-problem solve probability offset
MODELS = {"math-branch": {"aime24": 0.15, "gpqa_diamond": -0.1, "livecodebench": -0.1},
          "science-branch": {"aime24": -0.1, "gpqa_diamond": 0.1, "livecodebench": -0.05},
          "merged": {"aime24": 0.2, "gpqa_diamond": 0.12, "livecodebench": 0.05}}
BENCHES = {
    "aime24": {"domain": "math", "problems": 10, "n": 4, "version": "2024-v1", "tokens": 11000},
    "gpqa_diamond": {"domain": "science", "problems": 6, "n": 4, "version": "diamond-v1", "tokens": 6000},
    "livecodebench": {"domain": "code", "problems": 5, "n": 2, "version": "v5", "tokens": 12000},
}
XSS_PROMPT = ('Compute 1+1. <script>document.body.setAttribute("data-xss","script")</script>'
              '<img src=x onerror="document.body.setAttribute(\'data-xss\',\'img\')">')
XSS_ANSWER = "The answer is \\boxed{2}. <script>alert(1)</script>"


def pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def token_stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None, "p90": None, "max": None}
    return {"mean": sum(values) / len(values), "median": percentile(values, 0.5),
            "p90": percentile(values, 0.9), "max": max(values)}


def sample_rows(rng: random.Random, model: str, bench: str, spec: dict) -> list[dict]:
    rows = []
    for p in range(spec["problems"]):
        pid = f"{bench}-{p}"
        skill = min(0.95, max(0.05, 0.9 - p / spec["problems"] + MODELS[model][bench]))
        for i in range(spec["n"]):
            tokens = int(rng.gauss(spec["tokens"], spec["tokens"] * 0.3))
            tokens = max(300, min(MAX_TOKENS, tokens))
            truncated = tokens >= MAX_TOKENS - 1 or (bench == "aime24" and p == spec["problems"] - 1 and i == 0)
            correct = not truncated and rng.random() < skill
            verdict = "correct" if correct else ("truncated" if truncated else "incorrect")
            prompt = f"Problem {p} of {bench}: find the value. Please reason step by step."
            answer = f"The answer is \\boxed{{{p if correct else p + 1}}}."
            reference: object = str(p)
            detail: dict = {"extracted": str(p if correct else p + 1), "gold": str(p), "rule": "math_verify"}
            if bench == "gpqa_diamond":
                prompt = (f"GPQA-SECRET-QUESTION-TEXT {p}: which option is right?\n"
                          "A) alpha-option B) beta-option C) gamma-option D) delta-option")
                gold = "ABCD"[p % 4]
                pred = gold if correct else "ABCD"[(p + 1) % 4]
                answer = f"Answer: {pred} (beta-option)"
                reference = {"answer": gold, "options": ["alpha-option", "beta-option", "gamma-option",
                                                         "delta-option"]}
                verdict_of = "correct" if correct else "incorrect"  # the shape branchmerge/verify/science.py writes
                detail = {"gold": gold, "mode": "strict", "extracted": pred, "rule": "answer_line",
                          "strict": {"extracted": pred, "rule": "answer_line", "verdict": verdict_of},
                          "lenient": {"extracted": pred, "rule": "answer_line", "verdict": verdict_of},
                          "options_text": "alpha-option"}
            elif bench == "livecodebench":
                prompt = f"Write a program that prints the sum of the input numbers (task {p})."
                answer = "```python\nprint(sum(map(int, input().split())))\n```"
                reference = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
                detail = {"passed": 2 if correct else 1, "total": 2,
                          "status": "passed" if correct else "wrong_answer"}
            meta: dict = {}
            if bench == "gpqa_diamond":
                meta = {"domain": ["Physics", "Chemistry", "Biology"][p % 3], "record": f"rec{p}"}
            elif bench == "livecodebench":
                meta = {"difficulty": ["easy", "medium", "hard"][p % 3], "platform": "atcoder",
                        "contest_date": f"2024-{8 + p:02d}-01"}
            if bench == "aime24" and p == 0:
                prompt, answer = XSS_PROMPT, XSS_ANSWER
            if truncated:
                answer, detail = "", {"reason": "no closing </think>: the sample hit max_tokens"}
            thinking = int(tokens * 0.9)
            rows.append({
                "id": pid, "domain": spec["domain"], "source": bench, "prompt": prompt, "reference": reference,
                "meta": meta, "model": model, "sample_idx": i,
                "completion": f"<think>\nLet me think about problem {p}. " + "Step. " * 40 + "\n</think>\n\n" + answer,
                "reasoning": f"Let me think about problem {p}. " + "Step. " * 40,
                "answer": answer, "finish_reason": "length" if truncated else "stop",
                "prompt_tokens": 60, "completion_tokens": tokens, "verdict": verdict, "verdict_detail": detail,
                "prompt_hash": f"h{bench}{p}", "_thinking": thinking,
            })
    return rows


def summary(model: str, bench: str, spec: dict, rows: list[dict], rng: random.Random) -> dict:
    n = spec["n"]
    per_problem = []
    for p in range(spec["problems"]):
        mine = [r for r in rows if r["id"] == f"{bench}-{p}"]
        per_problem.append({"id": f"{bench}-{p}", "n": n, "correct": sum(r["verdict"] == "correct" for r in mine),
                            "mean_tokens": sum(r["completion_tokens"] for r in mine) / n})
    rates = [pp["correct"] / n for pp in per_problem]
    pass1 = sum(rates) / len(rates)
    boots = sorted(sum(rng.choice(rates) for _ in rates) / len(rates) for _ in range(1000))
    se = math.sqrt(sum(r * (1 - r) / n for r in rates)) / len(rates)
    tokens = [r["completion_tokens"] for r in rows]
    thinking = [r["_thinking"] for r in rows]
    metrics = {
        "pass@1": pass1, "pass@1_se": se, "pass@1_ci95": [boots[25], boots[974]],
        "pass@k": {str(k): sum(pass_at_k(n, pp["correct"], k) for pp in per_problem) / len(per_problem)
                   for k in (1, 2, 4, 8, 16) if k <= n},
        "cons@n": sum(r >= 0.5 for r in rates) / len(rates),
        "truncated_rate": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
        "unparsed_rate": 0.0, "error_rate": 0.0,
    }
    if spec["domain"] == "science":
        metrics["pass@1_strict"], metrics["pass@1_lenient"] = pass1 - 0.02, pass1
    return {
        "kind": "evaluation", "schema_version": 1, "bench": bench, "bench_version": spec["version"],
        "domain": spec["domain"], "model": model, "model_path": f"../../../train/{model}", "n": n, "num_problems": spec["problems"], "num_samples": len(rows),
        "metrics": metrics,
        "tokens": {
            "completion": token_stats(tokens), "thinking": token_stats(thinking),
            "answer": token_stats([a - b for a, b in zip(tokens, thinking)]),
            "correct": token_stats([r["completion_tokens"] for r in rows if r["verdict"] == "correct"]),
            "incorrect": token_stats([r["completion_tokens"] for r in rows if r["verdict"] != "correct"]),
        },
        "per_problem": per_problem,
        "sampling": {"n": n, "temperature": 0.6, "top_p": 0.95, "max_tokens": MAX_TOKENS, "seed": 0},
        "created": "2026-11-28T03:00:00Z",
    }


def write_eval(root: Path, rng: random.Random) -> None:
    for model in MODELS:
        for bench, spec in BENCHES.items():
            out = root / "eval" / model / bench
            out.mkdir(parents=True)
            rows = sample_rows(rng, model, bench, spec)
            (out / "summary.json").write_text(json.dumps(summary(model, bench, spec, rows, rng), indent=1))
            (out / "config.json").write_text(json.dumps({  # the shape branchmerge/evaluate/run.py writes
                "kind": "evaluation-config", "schema_version": 1, "bench": bench, "model": model,
                "model_path": f"../../../train/{model}",
                "model_fingerprint": {"model": f"runs/train/{model}", "local": True, "content_hash": "0" * 16},
                "dataset": {"id": f"hub/{bench}", "revision": "abc123", "num_rows": spec["problems"]},
                "engine": {"engine": "vllm", "vllm": "0.8.5"}, "sampling": {"max_tokens": MAX_TOKENS},
                "git_commit": "83443d4",
            }, indent=1))
            with (out / "samples.jsonl").open("w") as fh:
                for r in rows:
                    r.pop("_thinking")
                    fh.write(json.dumps(r) + "\n")


def write_stages(root: Path, rng: random.Random) -> None:
    cur = root / "curate-math"
    (cur / "data").mkdir(parents=True)
    lengths = [max(200, int(rng.gauss(4500, 2000))) for _ in range(200)]
    counts, edges = [0] * 10, [float(min(lengths) + i * (max(lengths) - min(lengths)) / 10) for i in range(11)]
    for v in lengths:
        counts[min(int((v - edges[0]) / (edges[1] - edges[0])), 9)] += 1

    def stage(name: str, unit: str, n_in: int, reasons: dict[str, int], out: int | None = None) -> dict:
        dropped = sum(reasons.values())
        return {"stage": name, "unit": unit, "in": n_in, "out": n_in - dropped if out is None else out,
                "dropped": dropped, "reasons": reasons}

    (cur / "stats.json").write_text(json.dumps({  # the shape branchmerge/curate/pipeline.py writes
        "kind": "curation", "schema_version": 1, "domain": "math", "rows": 200, "problems": 180,
        "source": {"name": "open-r1/OpenR1-Math-220k", "kind": "hub", "adapter": "openr1-math"},
        "teacher": {"name": "replay", "engine": "replay", "model": "deepseek-r1"},
        "funnel": [stage("source", "source rows", 210, {"malformed": 10}),
                   stage("generate", "problems -> completions", 200, {}, out=400),
                   stage("verify", "completions", 400, {"incorrect": 90, "unparsed": 10}),
                   stage("format", "completions", 300, {"unclosed_think": 20}),
                   stage("length", "completions", 280, {"too_long": 10}),
                   stage("dedup", "completions", 270, {"near_duplicate": 10}),
                   stage("decontam", "completions", 260, {"aime24_overlap": 5}),
                   stage("select", "completions", 255, {"not_selected": 55})],
        "rejected": 210,
        "token_lengths": {"measure": "student tokens (chat template applied)", "count": 200,
                          "percentiles": {"p50": 4200.0, "p90": 9100.0},
                          "histogram": {"edges": edges, "counts": counts}},
        "extra_key_from_the_future": [1, 2, 3],
    }, indent=1))
    pq.write_table(pa.table({
        "messages": [json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])] * 200,
        "completion_tokens": lengths}), cur / "data" / "train.parquet")
    (cur / "README.md").write_text(
        "---\nlicense: apache-2.0\ntask_categories:\n- text-generation\n---\n"
        "# Curated math data\n\nKept **200** of 400 generations from `deepseek-r1`.\n\n"
        "| stage | kept |\n|---|---|\n| verified | 300 |\n| selected | 200 |\n\n"
        "- exact and near-duplicate removal (MinHash)\n- decontamination against AIME 24/25\n\n"
        "A card must not inject markup: <script>document.body.setAttribute('data-xss','card')</script>\n\n"
        "```python\nfrom datasets import load_dataset\nds = load_dataset('parquet', data_dir='data')\n```\n")
    train = root / "train-math"
    train.mkdir()
    (train / "stats.json").write_text(json.dumps({
        "kind": "training", "schema_version": 1, "name": "train-math", "domain": "math", "base_model": "tiny-qwen2",
        "data": {"path": "../curate-math"}, "hparams": "demo", "settings": {"max_length": 512, "overlong": "drop"},
        "examples": {"rows": 200, "examples": 198}, "steps": 60, "epochs": 1.0, "tokens_seen": 123456,
        "first_loss": 3.9, "final_loss": 1.23, "wall_time_s": 42.0, "train_time_s": 40.0,
    }, indent=1))
    (train / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 3.0 * math.exp(-s / 20) + 1.0, "learning_rate": 1e-5}) + "\n"
        for s in range(1, 61, 5)) + '{"step": 61, "lo')  # a line torn by a crash
    (train / "README.md").write_text("# Training card: math branch\n\nBase `tiny-qwen2`, recipe *demo*, "
                                     "final loss 1.23.\n")
    merge = root / "merge-fusion"
    merge.mkdir()
    (merge / "stats.json").write_text(json.dumps({
        "kind": "merge", "schema_version": 1, "method": "arcee_fusion", "mode": "compat", "seed": 0, "device": "cpu",
        "threads": 2, "config": {"merge_method": "arcee_fusion"},
        "inputs": [{"ref": "science-branch", "path": "../train/science-branch", "role": "base", "sha256": "0" * 64},
                   {"ref": "math-branch", "path": "../train/math-branch", "role": "model", "sha256": "1" * 64}],
        "dtype": "bfloat16", "out_dtype": "bfloat16", "tensors": 27, "parameters": 300000,
        "shards": ["model.safetensors"], "time_s": 3.5,
    }, indent=1))
    (merge / "README.md").write_text("# Merge card\n\nMethod: `arcee_fusion` (IQR factor 1.5).\n\n"
                                     "1. science-branch (base)\n2. math-branch\n")


def main() -> None:
    rng = random.Random(8)
    for sub in ("eval", "curate-math", "train-math", "merge-fusion"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    write_eval(HERE, rng)
    write_stages(HERE, rng)


if __name__ == "__main__":
    main()
