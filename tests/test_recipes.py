"""The TinyR1 recipe as released, tinyr1-plus beside it, and the release's templates string for string."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from branchmerge.benchmarks import get_spec, with_template
from branchmerge.cli import app
from branchmerge.evaluate.prompts import messages_for, raw_prompt

runner = CliRunner()


def plan(name: str, tmp_path) -> dict:
    result = runner.invoke(app, ["run", name, "--dry-run", "--json", "--set", f"out={tmp_path / name}"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plans")
    return {name: {s["id"]: s for s in plan(name, tmp)["stages"]} for name in ("tinyr1", "tinyr1-plus")}


def test_tinyr1_dry_run_json_shows_every_release_choice(plans):
    stages = plans["tinyr1"]
    math, code = stages["curate-math"]["options"], stages["curate-code"]["options"]
    assert math["source_verdict"] == "correctness_math_verify" and math["select"] == "first"
    assert math["dedup"] is False and math["decontam"] == []
    assert code["require_correct"] is False and code["max_tokens_length"] == 16384
    for sid in ("curate-science-openthoughts", "curate-science-s1-59k", "curate-science-s1k"):
        assert stages[sid]["options"]["require_correct"] is False
    for sid in ("branch-math", "branch-code", "branch-science"):
        assert stages[sid]["hparams"]["chat_template"] == "qwen"
    for sid in (s for s in stages if s.startswith("curate-")):  # lengths measured as the branches train
        assert stages[sid]["options"]["chat_template"] == "qwen", sid
    assert stages["branch-math"]["hparams"]["packing_strategy"] == "plain"
    assert stages["branch-code"]["hparams"]["packing_strategy"] == "bfd"
    for sid in ("merge-math-science", "merge-final"):
        assert stages[sid]["options"]["parameters"] == {"with_replacement": False}
    assert set(stages["eval-merged"]["options"]["template"]) == {
        "aime24=tinyr1_math", "livecodebench=tinyr1_lcb", "gpqa_diamond=tinyr1_gpqa"}
    assert stages["eval-merged"]["options"]["date_window"] == "2024-08-01..2025-02-01"
    assert stages["curate-math"]["argv"][:3] == ["branchmerge", "curate", "math"]
    assert stages["curate-math"]["inputs"][0]["found"] == "hub"
    assert stages["branch-math"]["inputs"][0]["found"] == "stage curate-math"


def test_tinyr1_plus_differs_only_where_it_improves(plans):
    plus, release = plans["tinyr1-plus"], plans["tinyr1"]
    assert list(plus) == list(release)  # the same stages, so the report compares them side by side
    assert plus["curate-math"]["options"]["source_verdict"] is None
    assert plus["curate-math"]["options"]["dedup"] is True and plus["curate-math"]["options"]["decontam"] is None
    assert plus["curate-code"]["options"]["require_correct"] is True
    assert plus["branch-math"]["hparams"]["packing_strategy"] == "bfd"
    assert plus["branch-math"]["hparams"]["chat_template"] == "model"
    assert {plus[s]["options"]["chat_template"] for s in plus if s.startswith("curate-")} == {"model"}
    assert plus["merge-final"]["options"]["parameters"] == {}
    assert plus["eval-merged"]["options"]["template"] == []
    for sid in release:  # everything else is the release's
        if sid.startswith("branch-"):
            same = {k: v for k, v in release[sid]["hparams"].items() if k not in ("chat_template", "packing_strategy")}
            assert {k: plus[sid]["hparams"][k] for k in same} == same


def test_dry_run_refuses_a_missing_input_before_anything_runs(tmp_path, bm):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"vars: {{out: '{tmp_path / 'run'}'}}\n"
        "stages:\n"
        "  - id: c\n    command: [curate, math]\n"
        f"    options: {{source: '{tmp_path / 'nope.jsonl'}', out: '${{out}}/c'}}\n    done: '${{out}}/c/stats.json'\n")
    code, _, err = bm("run", recipe, "--dry-run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "nope.jsonl: no such file or folder, and no earlier stage writes it" in err
    assert not (tmp_path / "run").exists()


def test_a_real_run_refuses_when_a_needed_api_key_is_unset(tmp_path, monkeypatch, bm):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    code, _, err = bm("run", "tinyr1", "--set", f"out={tmp_path / 'run'}")
    assert code == 2 and "set DEEPSEEK_API_KEY" in err, err
    assert not (tmp_path / "run" / "curated").exists()  # nothing was started


GPQA_ROW = {"id": "g1", "prompt": "Which is a noble gas?",
            "reference": {"answer": "B", "options": {"A": "O2", "B": "Ne", "C": "N2", "D": "CO2"}}}


def test_release_math_template_is_the_raw_deepseek_math_cot_prompt():
    spec = with_template(get_spec("aime24"), "tinyr1_math")
    text = raw_prompt(spec.template, {"id": "p", "prompt": "Find $x$ if $x^{2}=4$."})
    assert text == ("<｜begin▁of▁sentence｜>Please reason step by step, and put your final answer within "
                    "\\boxed{}.<｜User｜>Find $x$ if $x^{2}=4$.<｜Assistant｜>")
    assert spec.grader["answer_region"] == "anywhere" and spec.grader["require_think"] is False


def test_release_gpqa_template_has_its_system_prompt_and_options_on_one_line():
    spec = with_template(get_spec("gpqa_diamond"), "tinyr1_gpqa")
    assert raw_prompt(spec.template, GPQA_ROW) is None
    assert messages_for(spec.template, GPQA_ROW) == [
        {"role": "system", "content": "You are a helpful and harmless assistant. You should think step-by-step."},
        {"role": "user", "content": "Return your final response within \\boxed{{}} and only include the letter choice "
                                    "(A, B, C, or D) as your final response. Which is a noble gas?\n"
                                    "A) O2, B) Ne, C) N2, D) CO2"},
    ]
    assert spec.grader["science_mode"] == "last_letter"


@pytest.mark.parametrize("starter", ["", "class Solution:\n    def f(self) -> int:\n        "])
def test_release_lcb_template_is_lmstyle_deepseekr1(starter):
    spec = with_template(get_spec("livecodebench"), "tinyr1_lcb")
    row = {"id": "c", "prompt": "Print 42.", "meta": {"starter_code": starter}}
    head = ("You will be given a question (problem specification) and will generate a correct Python program that "
            "matches the specification and passes all tests.\n\nQuestion: Print 42.\n\n")
    if starter:
        tail = ("You will use the following starter code to write the solution to the problem and enclose your code "
                f"within delimiters.\n```python\n{starter}\n```\n\n")
    else:
        tail = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
                "the sample inputs). Enclose your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```\n\n")
    assert messages_for(spec.template, row) == [{"role": "user", "content": head + tail}]


def test_release_grading_policies_take_the_last_answer_anywhere():
    from branchmerge.verify import grade

    math = with_template(get_spec("aime24"), "tinyr1_math").grader
    unclosed = "<think>\nSo x = 4, and the answer is \\boxed{4}"  # no </think>: the release grades it anyway
    assert grade("math", unclosed, "4", **math).verdict == "correct"
    assert grade("math", unclosed, "4", **get_spec("aime24").grader).verdict == "truncated"  # ours does not
    gpqa = with_template(get_spec("gpqa_diamond"), "tinyr1_gpqa").grader
    said = "<think>B or D?</think>\nThe answer is \\boxed{B}, because D fails."
    verdict = grade("science", said, GPQA_ROW["reference"], **gpqa)
    assert verdict.verdict == "incorrect" and verdict.detail["extracted"] == "D"  # the release's last letter
    assert verdict.detail["strict"]["extracted"] == "B"  # every reading is stored; regrading can pick another
