"""``branchmerge demo``: the whole Branch-Merge method offline on a CPU in minutes.

The demo only prepares inputs that a real run would bring from elsewhere — toy problem sets, a
presets file naming the built-in toy teacher, a benchmark file for the held-out problems and a
tiny random student backbone — and then runs ``recipes/demo.yaml`` through the same recipe runner
and the same commands as a real run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from branchmerge.atomic import temp_path, write_text
from branchmerge.engines.toy import ToyTeacher, make_problems
from branchmerge.reasoning import join_reasoning


@dataclass(frozen=True)
class Size:
    train: dict[str, int]
    test: int
    pretrain_steps: int
    branch_steps: int
    eval_max_tokens: int


SIZES = {
    "tiny": Size({"math": 48, "code": 24, "science": 48}, 8, 30, 30, 48),
    "small": Size({"math": 400, "code": 120, "science": 400}, 30, 300, 300, 96),
}


def recipe_vars(out: Path, size: str) -> dict[str, str]:
    s = SIZES[size]
    return {"out": str(out), "pretrain_steps": str(s.pretrain_steps), "branch_steps": str(s.branch_steps),
            "eval_max_tokens": str(s.eval_max_tokens)}


def prepare_inputs(out: Path, size: str, seed: int = 0, error_rate: float = 0.25) -> Path:
    """Write ``out/inputs`` (problems, teacher preset, benchmark file, backbone) once; reuse it after."""
    inputs = out / "inputs"
    if (inputs / "backbone" / "config.json").exists():
        return inputs
    s = SIZES[size]
    with temp_path(inputs) as tmp:
        tmp.mkdir(parents=True)
        train_files = []
        texts: list[str] = []
        for domain, n in s.train.items():
            train = make_problems(domain, n, seed, "train")
            test = make_problems(domain, s.test, seed, "test")
            for split, rows in (("train", train), ("test", test)):
                path = tmp / f"{domain}_{split}.jsonl"
                write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            train_files.append(f"./{domain}_train.jsonl")  # relative to presets.yaml: the folder can move
            for row in train:
                texts += [row["prompt"], join_reasoning(*ToyTeacher.trace(row))]
        presets = {"toy-teacher": {
            "description": "The demo's built-in teacher: R1-style traces, wrong on a known share of samples.",
            "engine": "toy", "model": "toy-teacher",
            "options": {"problems": train_files, "error_rate": error_rate, "seed": seed},
            "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 512},
        }}
        write_text(tmp / "presets.yaml", yaml.safe_dump(presets, sort_keys=False))
        write_text(tmp / "benchmarks.yaml", yaml.safe_dump(_benchmarks(), sort_keys=False))
        write_text(tmp / "merge_soup.yaml", yaml.safe_dump(_soup(), sort_keys=False))
        from branchmerge.tiny import build_tiny_model

        build_tiny_model(tmp / "backbone", texts, vocab_size=600, hidden_size=96, num_layers=2,
                         num_heads=4, num_kv_heads=2, intermediate_size=192, seed=seed)
    return inputs


def _soup() -> dict:
    """mergekit config of the baseline: an equal-weight average of the three branches (a model soup).
    Model paths are relative to the config's folder (``inputs/``), so a copied run folder still works."""
    return {
        "merge_method": "linear",
        "models": [{"model": f"../models/{d}", "parameters": {"weight": 1.0}} for d in ("math", "code", "science")],
        "dtype": "float32",
    }


def _benchmarks() -> dict:
    """Held-out toy problems as user benchmarks (the prompts already carry their instructions)."""
    common = {"loader": "rows", "template": "as_is", "n": 2}
    return {
        "benchmarks": {
            "demo_math": {"description": "held-out toy arithmetic", "domain": "math", **common},
            "demo_code": {"description": "held-out toy programs", "domain": "code", **common},
            "demo_science": {"description": "held-out toy multiple choice", "domain": "science", **common},
        },
        "templates": {"as_is": {"source": "the toy problem text as written", "user": "{prompt}"}},
    }


def finish(out: Path) -> None:
    """Tell the user where the report is and show its table on the terminal."""
    from rich.markdown import Markdown

    from branchmerge.console import out as console

    md = out / "report.md"
    head = md.read_text().split("\n## Per benchmark")[0]  # the Table 1 layout and the merge verdicts
    console.print(Markdown(head))
    console.print(f"\nReport: {out / 'report.html'} (HTML) and {md} (markdown)")
