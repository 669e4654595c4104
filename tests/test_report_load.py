"""Loading result directories by kind, and the errors for anything else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from branchmerge.contracts import CurationStats
from branchmerge.errors import UserError
from branchmerge.report import stages
from branchmerge.report.build import build_report
from branchmerge.report.load import load_dirs
from branchmerge.report.table import build_summary
from tests.report_helpers import DATA, EVAL, STAGES, copy_bench, edit_json, eval_dirs


def test_parent_and_bench_dirs_and_stage_kinds_are_recognised() -> None:
    inputs = load_dirs([*eval_dirs()[:2], *STAGES])
    assert {(r.model, r.bench) for r in inputs.evaluations} == {
        (m, b) for m in ("math-branch", "science-branch") for b in ("aime24", "gpqa_diamond", "livecodebench")
    }
    assert [s.kind for s in inputs.stages] == ["curation", "training", "merge"]
    assert inputs.stages[0].lengths == []  # its stats carry a length histogram: the Parquet is not read
    one = load_dirs([EVAL / "merged" / "aime24"]).evaluations
    assert [(r.model, r.bench, r.bench_version, len(r.samples), r.max_tokens) for r in one] == [
        ("merged", "aime24", "2024-v1", 40, 32768)
    ]


def test_curation_without_a_length_histogram_reads_parquet_lengths(tmp_path: Path) -> None:
    cur = tmp_path / "cur"
    shutil.copytree(DATA / "curate-math", cur)
    stats = json.loads((cur / "stats.json").read_text())
    del stats["token_lengths"]
    (cur / "stats.json").write_text(json.dumps(stats))
    assert len(load_dirs([cur]).stages[0].lengths) == 200  # completion_tokens of data/*.parquet


def test_a_folder_of_runs_is_searched_for_result_directories(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(EVAL, runs / "eval")
    for stage in STAGES:
        shutil.copytree(stage, runs / stage.name)
    (runs / ".hidden" / "x").mkdir(parents=True)
    (runs / ".hidden" / "x" / "stats.json").write_text("{}")  # hidden folders are not searched
    inputs = load_dirs([runs])
    assert len(inputs.evaluations) == 9 and [s.path.name for s in inputs.stages] == [
        "curate-math", "merge-fusion", "train-math"]


def test_unknown_directory_names_it_and_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hi")
    with pytest.raises(UserError) as exc:
        load_dirs([tmp_path / "random"])
    assert str(tmp_path / "random") in str(exc.value)
    assert "summary.json" in str(exc.value) and "stats.json" in str(exc.value)
    with pytest.raises(UserError, match="not a directory"):
        load_dirs([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("stats.json", {"kind": "mystery"}, "kind is 'mystery'"),
        ("stats.json", [1, 2], "expected a JSON object"),
        ("summary.json", {"kind": "curation"}, "not 'evaluation'"),
        ("summary.json", {"kind": "evaluation", "model": "m", "metrics": {}}, "missing key 'bench'"),
        ("summary.json", {"kind": "evaluation", "bench": "x", "model": "m", "metrics": {"pass@1": "hi"}}, "pass@1"),
    ],
)
def test_bad_kind_or_summary_is_a_user_error_naming_the_file(tmp_path: Path, name: str, content: object,
                                                              message: str) -> None:
    (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(UserError, match=message) as exc:
        load_dirs([tmp_path])
    assert str(tmp_path / name) in str(exc.value)


def test_broken_json_and_broken_sample_line_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "stats.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable JSON"):
        load_dirs([tmp_path])
    bench = copy_bench(tmp_path, "merged", "aime24")
    with (bench / "samples.jsonl").open("a") as fh:
        fh.write("{torn\n")
    with pytest.raises(UserError, match=r"samples\.jsonl:41"):
        load_dirs([bench])


def test_a_summary_without_a_model_name_is_labelled_by_its_folder(tmp_path: Path) -> None:
    bench = copy_bench(tmp_path / "checkpoint-200", "merged", "aime24", "aime24")
    edit_json(bench / "summary.json", model=None)
    assert load_dirs([bench]).evaluations[0].model == "checkpoint-200"


def test_the_same_model_and_bench_twice_is_refused(tmp_path: Path) -> None:
    a = copy_bench(tmp_path, "merged", "aime24", "a")
    b = copy_bench(tmp_path, "merged", "aime24", "b")
    with pytest.raises(UserError, match="two results for model 'merged' on aime24") as exc:
        load_dirs([a, b])
    assert str(a) in str(exc.value) and str(b) in str(exc.value)


def test_different_bench_versions_are_separate_columns_never_averaged(tmp_path: Path) -> None:
    old = copy_bench(tmp_path, "math-branch", "aime24")
    edit_json(old / "summary.json", bench_version="2023-v0", metrics={"pass@1": 0.1})
    new = EVAL / "merged" / "aime24"
    summary = build_summary(load_dirs([old, new]).evaluations, [])
    assert [(c.bench, c.version, c.label) for c in summary.columns] == [
        ("aime24", "2023-v0", "AIME 2024 [2023-v0]"),
        ("aime24", "2024-v1", "AIME 2024 [2024-v1]"),
    ]
    cells = {row.label: set(row.cells) for row in summary.rows}
    assert cells == {"math-branch": {"aime24@2023-v0"}, "merged": {"aime24@2024-v1"}}
    assert summary.version_notes() == [
        "AIME 2024 was run under 2 benchmark versions (2023-v0, 2024-v1): each has its own column; their "
        "numbers are not comparable and are never averaged."]
    out = tmp_path / "r.md"
    build_report([old, new], md_path=out, html_path=tmp_path / "r.html")
    assert "> **Note:** AIME 2024 was run under 2 benchmark versions" in out.read_text()
    assert "AIME 2024 was run under 2 benchmark versions" in (tmp_path / "r.html").read_text()


def test_stage_stats_are_read_through_their_contracts(tmp_path) -> None:
    curation = CurationStats.read(DATA / "curate-math")
    assert stages.funnel(curation)[:3] == [("source", 200.0), ("generate", 400.0), ("verify", 300.0)]
    assert stages.reasons(curation)[:2] == [("verify: incorrect", 90.0), ("select: not_selected", 55.0)]
    edges, counts, measure = stages.length_histogram(curation)
    assert len(edges) == 11 and sum(counts) == 200 and measure.startswith("student tokens")
    assert curation.dump()["extra_key_from_the_future"] == [1, 2, 3]  # a newer writer's field passes through
    flat = dict(stages.flatten({"a": {"b": 1, "c": list(range(50))}, "d": "x" * 500}))
    assert flat["a.b"] == "1" and flat["a.c"] == "[50 items]" and len(flat["d"]) == 301
    training = load_dirs([DATA / "train-math"]).stages[0]
    losses = stages.loss_history(training.history)  # from metrics.jsonl, torn line skipped
    assert len(losses) == 12 and losses[0] == (1.0, pytest.approx(3.0 * 0.951229 + 1.0))

    # a file that lacks a field, or holds a mistyped one, fails with one line naming the file and the field
    broken = tmp_path / "broken"
    shutil.copytree(DATA / "curate-math", broken)
    stats = json.loads((broken / "stats.json").read_text())
    del stats["funnel"][1]["out"]
    (broken / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(UserError, match=r"broken/stats.json: missing key 'funnel.1.out'"):
        load_dirs([broken])
    stats["funnel"][1]["out"], stats["rows"] = 400, "many"
    (broken / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(UserError, match=r"stats.json: key 'rows'"):
        load_dirs([broken])
    stats["rows"], stats["schema_version"] = 200, 99
    (broken / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(UserError, match="schema_version 99 is newer"):
        load_dirs([broken])


def test_only_the_samples_a_viewer_can_show_keep_their_texts() -> None:
    result = load_dirs([EVAL / "merged" / "aime24"], texts_per_verdict=1).evaluations[0]
    with_text = [(r["id"], r["verdict"], r["sample_idx"]) for r in result.samples if "reasoning" in r]
    firsts = {}
    for r in sorted(result.samples, key=lambda r: r["sample_idx"]):
        firsts.setdefault((r["id"], r["verdict"]), r["sample_idx"])
    assert sorted(with_text) == sorted((pid, v, i) for (pid, v), i in firsts.items())
    assert len(result.samples) == 40 and all("completion_tokens" in r for r in result.samples)
    assert not any("completion" in r for r in result.samples)  # reasoning + answer hold the same text
