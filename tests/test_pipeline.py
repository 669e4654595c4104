"""Recipes: validation against the real command tree, the dry-run plan, resume by skipping."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from branchmerge.cli import app
from branchmerge.errors import UserError
from branchmerge.pipeline.recipe import builtin_recipe, load_recipe
from branchmerge.pipeline.runner import run

runner = CliRunner()


def test_tinyr1_dry_run_validates_and_prices_the_paper_pipeline():
    result = runner.invoke(app, ["run", "tinyr1", "--dry-run", "--set", "out=/data/x"], terminal_width=250)
    assert result.exit_code == 0, result.output
    for stage in ("curate-math", "branch-code", "merge-math-science", "merge-final", "eval-merged", "report"):
        assert stage in result.output
    assert "--base /data/x/models/science --model /data/x/models/math" in result.output  # TinyR1's merge order
    assert "branchmerge launch --machines 4 --gpus-per-machine 8 -- train math" in result.output
    recipe = load_recipe(builtin_recipe("tinyr1"))
    assert sum(s.estimate.get("gpu_hours", 0) for s in recipe.stages) > 500
    evals = {s.id: s.options for s in recipe.stages if s.command == ["evaluate"]}
    assert evals["eval-merged"]["bench"] == ["aime24", "livecodebench", "gpqa_diamond"]


def _recipe(tmp_path, stages: str, vars_: str = "out: x"):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nvars: {{{vars_}}}\nstages:\n{stages}")
    return path


def test_bad_recipes_name_the_problem(tmp_path):
    bad_option = _recipe(tmp_path, "  - {id: a, command: merge, options: {colour: red}, done: x}\n")
    with pytest.raises(UserError, match="stage 'a'.*has no option --colour"):
        run(load_recipe(bad_option), app, dry_run=True)
    bad_command = _recipe(tmp_path, "  - {id: a, command: [curate, poetry], done: x}\n")
    with pytest.raises(UserError, match="unknown command 'curate poetry'.*code, math, science"):
        run(load_recipe(bad_command), app, dry_run=True)
    bad_var = _recipe(tmp_path, "  - {id: a, command: report, args: ['${nowhere}'], done: x}\n")
    with pytest.raises(UserError, match="nowhere"):
        load_recipe(bad_var)
    with pytest.raises(UserError, match="no variable 'size'"):
        load_recipe(bad_var, {"size": "3"})
    twice = _recipe(tmp_path, "  - {id: a, command: report, done: x}\n  - {id: a, command: report, done: y}\n")
    with pytest.raises(UserError, match="appears twice"):
        load_recipe(twice)


def test_finished_stages_are_skipped_and_a_failing_stage_stops_the_run(tmp_path):
    done = tmp_path / "done.txt"
    done.write_text("ok")
    (tmp_path / "nothing").mkdir()  # exists, but holds no results: the report stage fails when it runs
    recipe = _recipe(
        tmp_path,
        f"  - {{id: finished, command: report, args: [{tmp_path}/nothing], done: {done}}}\n"
        f"  - {{id: broken, command: report, args: [{tmp_path}/nothing], done: {tmp_path}/r.md}}\n",
    )
    with pytest.raises(UserError, match="stage 'broken' failed with exit code 2"):
        run(load_recipe(recipe), app)


def test_committed_data_cards_are_what_the_generator_writes(tmp_path):
    from pathlib import Path

    from branchmerge.pipeline.cards import write_planned_cards

    committed = Path(__file__).resolve().parents[1] / "data_cards"
    for path in write_planned_cards("tinyr1", tmp_path):
        assert (committed / path.name).read_text() == path.read_text(), f"regenerate {path.name}"
        assert "Expected, not measured" in path.read_text()
    assert "rows: 58000" in (committed / "tinyr1-curate-math.md").read_text()


def test_an_interrupted_stage_is_resumed_not_refused(tmp_path, tiny_model):
    """A stage killed mid-way leaves a partial output; rerunning the recipe passes --resume to it."""
    from tests.conftest import BENCHMARKS

    out = tmp_path / "eval"
    recipe = _recipe(
        tmp_path,
        f"  - {{id: ev, command: evaluate, options: {{bench: aime24, data: '{BENCHMARKS}/aime24.jsonl', "
        f"model: '{tiny_model}', n: 1, max_tokens: 4, limit: 2, out: '{out}'}}, done: '{out}/aime24/summary.json'}}\n",
    )
    from branchmerge.outdir import mark

    (out / "aime24" / "shards").mkdir(parents=True)
    mark(out / "aime24", "evaluation-bench")  # what a kill right after start leaves: the claim, an empty shard
    (out / "aime24" / "shards" / "part-00000.jsonl").write_text("")
    run(load_recipe(recipe), app)
    assert (out / "aime24" / "summary.json").exists()


def test_quiet_runs_pass_quiet_to_their_stages_but_not_to_a_launcher(tmp_path):
    import sys

    from branchmerge.pipeline.plan import python_argv

    recipe = load_recipe(_recipe(
        tmp_path,
        "  - {id: a, command: [verify, math], options: {gold: '1', pred: '1'}, done: x}\n"
        "  - {id: b, command: [verify, math], options: {gold: '1', pred: '1'}, done: y,\n"
        "     launcher: [branchmerge, launch, --cpu, --]}\n",
    ))
    plain, launched = recipe.stages
    assert python_argv(plain, quiet=True)[:4] == [sys.executable, "-m", "branchmerge", "-q"]
    assert "-q" not in python_argv(plain)
    assert python_argv(launched, quiet=True)[:4] == ["branchmerge", "launch", "--cpu", "--"]
    assert "-q" not in python_argv(launched, quiet=True)
