"""A new user's first hour: the mistakes people make get exit 2 (or 1 when nothing could be done), one
line on stderr, no traceback, and nothing they made is touched."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.train_helpers import corpus, toy_rows, write_curation, write_jsonl


def one_line(code: int, err: str, expected: int = 2) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == expected, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from branchmerge.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("fh") / "base", corpus(toy_rows(40)), vocab_size=300)


@pytest.fixture()
def curated(tmp_path) -> Path:
    folder = write_curation(tmp_path / "curated", toy_rows(10))
    (folder / "notes.txt").write_text("my notes")
    return folder


# -- nothing a user made is ever deleted ------------------------------------------------------------


def test_merge_into_a_curated_dataset_is_refused_untouched(bm, model, curated, tmp_path):
    before = snapshot(curated)
    config = tmp_path / "m.yaml"
    config.write_text(f"merge_method: linear\nmodels:\n  - model: {model}\n    parameters: {{weight: 1.0}}\n")
    line = one_line(*bm("merge", config, curated)[::2])
    assert "not empty" in line or "holds a curation output" in line
    assert snapshot(curated) == before
    line = one_line(*bm("merge", config, curated, "--overwrite")[::2])
    assert snapshot(curated) == before


@pytest.mark.parametrize("command", [
    ["curate", "math", "--source", "{src}", "--out", "{out}"],
    ["train", "math", "--data", "{data}", "--base", "{model}", "--out", "{out}"],
    ["evaluate", "--bench", "aime24", "--model", "{model}", "--data", "{bench}", "--out", "{out}/x"],
])
def test_every_command_refuses_a_folder_it_did_not_write(bm, model, curated, tmp_path, command):
    src = write_jsonl(tmp_path / "src.jsonl", [{"problem": "1+1?", "answer": "2"}])
    bench = write_jsonl(tmp_path / "b.jsonl", [{"id": "1", "problem": "1+1?", "answer": "2"}])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("do not delete")
    if command[0] == "evaluate":
        (mine / "x").mkdir()
        (mine / "x" / "thesis.tex").write_text("do not delete")
    args = [a.format(src=src, out=mine, data=curated, model=model, bench=bench) for a in command]
    before = snapshot(mine)
    line = one_line(*bm(*args)[::2])
    assert "not written by branchmerge" in line or "which is not" in line or "not empty" in line
    assert snapshot(mine) == before
    one_line(*bm(*args, "--overwrite")[::2])
    assert snapshot(mine) == before


@pytest.mark.parametrize("names", [("README.md", "stats.json"), ("config.json", "model.safetensors", "stats.json")])
def test_files_named_like_ours_are_not_ours_without_the_marker(bm, model, tmp_path, names):
    """Only our marker says a folder is ours: a user's README.md and stats.json (even one that reads like
    a curation record) are never replaced, with or without --overwrite."""
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in names:
        (mine / name).write_text('{"kind": "curation"}' if name == "stats.json" else "mine")
    before = snapshot(mine)
    src = write_jsonl(tmp_path / "src.jsonl", [{"problem": "1+1?", "answer": "2"}])
    config = tmp_path / "m.yaml"
    config.write_text(f"merge_method: linear\nmodels:\n  - model: {model}\n    parameters: {{weight: 1.0}}\n")
    for args in (["curate", "math", "--source", src, "--out", mine], ["merge", config, mine]):
        for extra in ([], ["--overwrite"]):
            line = one_line(*bm(*args, *extra)[::2])
            assert "not written by branchmerge" in line, line
            assert snapshot(mine) == before


def test_a_failed_training_run_can_be_rerun_with_new_settings(bm, model, curated, tmp_path):
    out = tmp_path / "run"
    line = one_line(*bm("train", "math", "--data", curated, "--base", model, "--out", out, "--set",
                        "max_length=2")[::2])  # every example is too long: fails before any checkpoint
    assert "no usable training example" in line
    code, stdout, err = bm("train", "math", "--data", curated, "--base", model, "--out", out, "--max-steps", "1")
    assert code == 0, err
    assert "math branch ->" in stdout


# -- wrong kinds of paths, bad numbers, bad keys: one line, exit 2 ---------------------------------------


def test_wrong_paths(bm, model, curated, tmp_path):
    folder = tmp_path / "afolder"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    parquet_named_jsonl = tmp_path / "rows.jsonl"
    parquet_named_jsonl.write_bytes((curated / "data" / "train-00000-of-00001.parquet").read_bytes())
    cases = [
        (["merge", folder, tmp_path / "o"], "folder"),
        (["report", curated, "--md", folder], "folder"),
        (["curate", "math", "--source", folder, "--out", tmp_path / "c1"], "no .jsonl"),
        (["curate", "math", "--source", text, "--out", tmp_path / "c2"], "expected a"),
        (["curate", "math", "--source", tmp_path / "missing.jsonl", "--out", tmp_path / "c3"], "no such file"),
        (["curate", "math", "--source", empty, "--out", tmp_path / "c4"], "empty"),
        (["curate", "math", "--source", parquet_named_jsonl, "--out", tmp_path / "c5"], "parquet data named .jsonl"),
        (["train", "math", "--data", text, "--base", model, "--out", tmp_path / "t1"], "no .jsonl"),
        (["train", "math", "--data", curated, "--base", text, "--out", tmp_path / "t2"], "--base"),
        (["train", "math", "--data", curated, "--base", model, "--out", text], "is a file"),
        (["evaluate", "--bench", "aime24", "--model", model, "--data", folder, "--out", tmp_path / "e"], "folder"),
        (["verify", "math", folder, "--out", tmp_path / "v.jsonl"], "folder"),
        (["verify", "math", parquet_named_jsonl, "--out", tmp_path / "v.jsonl"], "parquet data named .jsonl"),
    ]
    for args, expected in cases:
        line = one_line(*bm(*args)[::2])
        assert expected in line, (args, line)
    left = [name for name in ("o", "c1", "c2", "c3", "c4", "c5", "t1", "t2", "e") if (tmp_path / name).exists()]
    assert not left, f"a refused command left an output folder behind: {left}"


@pytest.mark.parametrize("args, expected", [
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--limit", "0"], "--limit"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--limit", "-1"], "--limit"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--n", "zero"], "--n"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--top-p", "1.5"], "--top-p"),
    (["evaluate", "--bench", "aime24", "--model", "m", "--out", "o", "--n", "0"], "--n"),
    (["evaluate", "--bench", "aime24", "--model", "m", "--out", "o", "--temperature", "-1"], "--temperature"),
    (["evaluate", "--bench", "aime24", "--model", "m", "--out", "o", "--workers", "0"], "--workers"),
    (["evaluate", "--bench", "aime42", "--model", "m", "--out", "o"], "aime24"),
    (["train", "math", "--data", "d", "--base", "b", "--out", "o", "--set", "learning_rate=fast"], "learning_rate"),
    (["train", "math", "--data", "d", "--base", "b", "--out", "o", "--set", "lerning_rate=1e-5"], "learning_rate"),
    (["train", "math", "--data", "d", "--base", "b", "--out", "o", "--max-steps", "-3"], "--max-steps"),
    (["merge", "--method", "lineer", "--base", "a", "--model", "b", "--out", "o"], "linear"),
    (["verify", "math", "--gold", "1", "--pred", "1", "--timeout-s", "-2"], "--timeout-s"),
    (["verify", "math", "--gold", "1", "--pred", "1", "--science-mode", "loose"], "lenient"),
    (["run", "tinyr1", "--set", "nope=1", "--dry-run"], "nope"),
    (["sandbox", "run", "x.py", "--tests", "t.json", "--timeout-s", "0"], "--timeout-s"),
    (["merge", "--method", "linear", "--model", "b", "--param", "weight=1", "--device", "banana", "--out", "o"],
     "--device"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--decontam", "nosuchbench"], "nosuchbench"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--chat-template", "chatlm"], "chatml"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--chat-template", "missing.jinja"], "missing.jinja"),
    (["curate", "math", "--source", "x.jsonl", "--out", "o", "--decontam", "aime24=missing.jsonl"], "missing.jsonl"),
    (["evaluate", "--bench", "livecodebench", "--model", "m", "--out", "o", "--release", "v99"], "v99"),
    (["evaluate", "--bench", "livecodebench", "--model", "m", "--out", "o", "--date-window", "soon"], "--date-window"),
])
def test_bad_numbers_choices_and_keys(bm, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    line = one_line(*bm(*args)[::2])
    assert expected in line, line
    assert not (tmp_path / "o").exists()


def test_built_in_recipe_names_win_over_local_folders(bm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyr1").mkdir()
    code, stdout, err = bm("run", "tinyr1", "--dry-run", "--set", f"out={tmp_path / 'r'}")
    assert code == 0, err
    assert "curate-math" in stdout


# -- exit codes mean something ----------------------------------------------------------------------------


def test_nothing_done_is_not_success(bm, tmp_path):
    useless = write_jsonl(tmp_path / "useless.jsonl", [{"colour": "red"}, {"colour": "blue"}])
    line = one_line(*bm("curate", "math", "--source", useless, "--out", tmp_path / "c")[::2])
    assert "cannot recognise the schema" in line and "--map" in line
    errors = write_jsonl(tmp_path / "rows.jsonl", [{"nothing": 1}, {"nothing": 2}])
    code, _, err = bm("verify", "math", errors, "--out", tmp_path / "graded.jsonl")
    assert code != 0 and "Traceback" not in err
    assert "every row" in err or "no row" in err


def test_verify_code_that_grades_nothing_is_not_success(bm, tmp_path):
    rows = write_jsonl(tmp_path / "code.jsonl", [{"completion": "<think>x</think>\n```python\nprint(1)\n```",
                                                  "reference": "no tests here"}])
    line = one_line(*bm("verify", "code", rows, "-o", tmp_path / "graded.jsonl")[::2], expected=1)
    assert "every verdict is 'error'" in line and "tests" in line


def test_quiet_leaves_the_result_line_only(bm, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"completion": "<think>x</think> \\boxed{2}", "reference": "2"}])
    code, stdout, err = bm("-q", "verify", "math", rows, "-o", tmp_path / "graded.jsonl")
    assert code == 0 and err == "", err
    assert stdout.strip().splitlines() == [f"verify math: 1 row -> {tmp_path / 'graded.jsonl'} (correct 1)"]


def test_verify_file_mode_reads_every_row_format_and_refuses_foreign_output(bm, tmp_path):
    rows = [{"completion": "<think>x</think> \\boxed{2}", "reference": "2"},
            {"completion": "<think>x</think> \\boxed{3}", "reference": "2"}]
    import pandas as pd

    src = tmp_path / "rows.parquet"
    pd.DataFrame(rows).to_parquet(src)
    csv = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    for path in (src, csv):
        out = tmp_path / f"graded-{path.suffix[1:]}.jsonl"
        code, _, err = bm("verify", "math", path, "-o", out)
        assert code == 0, err
        verdicts = [json.loads(line)["verdict"] for line in out.read_text().splitlines()]
        assert verdicts == ["correct", "incorrect"]
    foreign = tmp_path / "mine.jsonl"
    foreign.write_text('{"my": "data"}\n')
    one_line(*bm("verify", "math", src, "-o", foreign)[::2])
    assert foreign.read_text() == '{"my": "data"}\n'


# -- offline: one line, within seconds -------------------------------------------------------------------


def test_offline_is_detected_once_and_fast(bm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    import branchmerge.network as network

    for variable in network.OFFLINE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    monkeypatch.setattr(network, "_state", None)
    src = write_jsonl(tmp_path / "src.jsonl", [
        {"problem": f"What is {i} + 1?", "answer": str(i + 1),
         "generations": [f"<think>\n{i} + 1 = {i + 1}\n</think>\n\nSo \\boxed{{{i + 1}}}."]} for i in range(6)])
    start = time.monotonic()
    code, stdout, err = bm("curate", "math", "--teacher", "replay", "--source", src, "--out", tmp_path / "c")
    took = time.monotonic() - start
    assert code == 0, err
    assert took < 30, took
    assert err.count("offline:") == 1
    assert err.count("SKIPPED") == 1  # one decontamination warning for all four benchmarks
    assert "Retrying" not in err and "Traceback" not in err
    assert stdout.strip().startswith("curated 6 rows")


# -- hints name options that exist -----------------------------------------------------------------------


def test_every_option_named_in_a_message_exists():
    """Every --option named in an error, warning, result line or help text is an option of some command."""
    import ast

    import click
    import typer

    from branchmerge.cli import app

    known: set[str] = set()

    def walk(command: click.Command) -> None:
        for param in command.params:
            known.update(getattr(param, "opts", []))
            known.update(getattr(param, "secondary_opts", []))
        known.update(getattr(command, "hidden_aliases", {}))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    speaking = {"UserError", "RecordError", "choice_error", "warning", "warn", "info", "error", "result", "setting",
                "Option", "Argument", "Exit"}
    root = Path(__file__).resolve().parents[1] / "branchmerge"
    missing = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in speaking:
                continue
            texts, inside = [], set()
            for part in ast.walk(node):
                if isinstance(part, ast.JoinedStr):  # an f-string: scan it whole, placeholders as X
                    inside.update(id(v) for v in part.values)
                    texts.append("".join(v.value if isinstance(v, ast.Constant) else "X" for v in part.values))
            texts += [p.value for p in ast.walk(node)
                      if isinstance(p, ast.Constant) and isinstance(p.value, str) and id(p) not in inside]
            for text in texts:
                ours = re.sub(r"`[^`]*`", "", text)  # `hf download X --local-dir D`: another tool's options
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", ours):
                    if flag not in known:
                        missing.setdefault(flag, f"{path.relative_to(root)}:{node.lineno}")
    assert not missing, f"messages name options no command has: {missing}"
