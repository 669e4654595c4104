"""Training runs on a tiny model: loss goes down, outputs, resume, reload and generate, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from branchmerge.errors import UserError
from branchmerge.train.config import TrainConfig
from branchmerge.train.run import train
from tests.train_helpers import corpus, toy_rows, write_curation, write_jsonl


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from branchmerge.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("train_run")
    rows = toy_rows(240)
    base = build_tiny_model(root / "base", corpus(rows), vocab_size=300)
    return root, base, write_curation(root / "curated", rows)


@pytest.fixture(scope="module")
def trained(setup):
    root, base, data = setup
    config = TrainConfig("math", str(data), str(base), str(root / "math"), hparams="demo")
    return config, train(config)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_loss_goes_down_and_outputs_are_complete(trained):
    config, stats = trained
    out = Path(config.out)
    assert stats["kind"] == "training" and json.loads((out / "stats.json").read_text()) == json.loads(
        json.dumps(stats)
    )
    losses = [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) >= 5
    assert losses[-1] < 0.6 * losses[0]
    assert stats["final_loss"] == losses[-1]
    assert stats["examples"]["examples"] == 240
    assert stats["tokens_seen"] == stats["examples"]["tokens"] * 3  # 3 epochs, packed without padding
    assert stats["data"]["curation"]["rows"] == 240 and stats["data"]["curation"]["rejected"] == 7
    card = (out / "README.md").read_text()
    for needle in ("base_model:", config.base, "verify 247->240", "teacher toy-teacher", "tokens seen", "final logged loss", "wall time",
                   "constant_with_warmup", "branchmerge train math"):
        assert needle in card
    for name in ("config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"):
        assert (out / name).is_file()
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    assert not (out / ".tokenized").exists() and not (out / ".final.tmp").exists()


def test_saved_model_reloads_and_generates_with_the_hf_engine(trained):
    from transformers import AutoTokenizer

    from branchmerge.engines import Request, SamplingParams, get_engine

    config, _ = trained
    assert AutoTokenizer.from_pretrained(config.out).chat_template  # template travels with the model
    engine = get_engine("hf", model=config.out)
    [completion] = engine.generate(
        [Request(id="q", messages=[{"role": "user", "content": "What is 12 + 7?"}])],
        SamplingParams(temperature=0.0, max_tokens=40),
    )
    # the prompt ends in "<think>\n"; a trained branch writes the trace, closes it, answers and stops
    assert completion.finish_reason == "stop"
    assert "</think>" in completion.text and "The answer is" in completion.answer


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights(setup):
    from transformers import TrainerCallback

    root, base, _ = setup
    data = write_jsonl(root / "resume" / "rows.jsonl", toy_rows(64, seed=1))
    overrides = {"save_steps": 3, "logging_steps": 1, "save_total_limit": 2}

    def config(name, resume=False):
        return TrainConfig("science", str(data), str(base), str(root / name), hparams="demo", max_steps=8,
                           resume=resume, overrides=overrides)

    whole = train(config("whole"))

    class Crash(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise Interrupt

    with pytest.raises(Interrupt):
        train(config("cut"), callbacks=[Crash()])
    assert not (root / "cut" / "stats.json").exists()
    with pytest.raises(UserError, match="pass --resume"):
        train(config("cut"))
    with (root / "cut" / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "lo')  # a line torn by the crash
    resumed = train(config("cut", resume=True))
    assert resumed["resumed_from_step"] == 3 and resumed["steps"] == whole["steps"] == 8
    a, b = _weights(root / "whole"), _weights(root / "cut")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-6, name
    def losses(name):
        rows = map(json.loads, (root / name / "metrics.jsonl").read_text().splitlines())
        return [(row["step"], round(row["loss"], 5)) for row in rows if "loss" in row]

    assert losses("cut") == losses("whole") and len(losses("whole")) == 8  # no duplicated lines after resume
    assert resumed["tokens_seen"] == whole["tokens_seen"]
    (root / "cut" / "stats.json").unlink()  # pretend unfinished, then resume with another schedule
    with pytest.raises(UserError, match="different settings.*max_steps"):
        train(TrainConfig("science", str(data), str(base), str(root / "cut"), hparams="demo", max_steps=9,
                          resume=True, overrides=overrides))


def test_bad_input_fails_before_any_model_is_loaded(setup, tmp_path, monkeypatch):
    import trl

    root, base, data = setup

    def no_training(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(trl, "SFTTrainer", no_training)
    with pytest.raises(UserError, match="--base .*no such directory"):
        train(TrainConfig("math", str(data), str(tmp_path / "missing-model"), str(tmp_path / "o1")))
    with pytest.raises(UserError, match="no such file"):
        train(TrainConfig("math", str(tmp_path / "nodata"), str(base), str(tmp_path / "o2")))
    unusable = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "q"}]}] * 4)
    with pytest.raises(UserError, match="no usable training example"):
        train(TrainConfig("math", str(unusable), str(base), str(tmp_path / "o3")))
    (tmp_path / "o4").mkdir()
    (tmp_path / "o4" / "something.txt").write_text("x")
    with pytest.raises(UserError, match="not a training run directory"):
        train(TrainConfig("math", str(data), str(base), str(tmp_path / "o4")))


def test_cli_trains_and_refuses_to_overwrite(setup, tmp_path):
    from typer.testing import CliRunner

    from branchmerge.cli import app

    _, base, data = setup
    out = tmp_path / "cli"
    args = ["train", "code", "--data", str(data), "--base", str(base), "--out", str(out), "--max-steps", "2",
            "--set", "learning_rate=1e-3", "--set", "logging_steps=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["steps"] == 2 and stats["settings"]["learning_rate"] == 1e-3
    assert "--set learning_rate=0.001" in stats["command"]
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, UserError) and "finished" in str(again.exception)
    assert CliRunner().invoke(app, [*args, "--resume"]).exit_code == 0  # nothing left to do


def test_mixture_trains_on_several_datasets_at_once(setup, tmp_path):
    from typer.testing import CliRunner

    from branchmerge.cli import app

    root, base, data = setup
    other = write_jsonl(tmp_path / "extra.jsonl", toy_rows(40, seed=1))
    out = tmp_path / "mix"
    args = ["train", "mixture", "--data", str(data), "--data", str(other), "--base", str(base), "--out", str(out),
            "--max-steps", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["domain"] == "mixture"
    assert str(other) in stats["data"]["files"] and len(stats["data"]["files"]) == 2
    assert stats["examples"]["rows"] == 240 + 40
    assert stats["command"].count("--data ") == 2


def test_release_template_and_plain_packing_train_and_are_saved_with_the_model(setup, tmp_path):
    """TinyR1's math branch: qwen ChatML template, whole examples packed into shared-attention rows."""
    from transformers import AutoTokenizer, GenerationConfig

    from branchmerge.chat import QWEN

    root, base, data = setup
    config = TrainConfig("math", str(data), str(base), str(tmp_path / "m"), hparams="demo", max_steps=2,
                         overrides={"chat_template": "qwen", "packing": True, "packing_strategy": "plain",
                                    "max_length": 512})
    stats = train(config)
    assert stats["examples"]["packed_rows"] < stats["examples"]["examples"]  # several examples per row
    saved = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert saved.chat_template == QWEN  # inference renders prompts as training did
    eos = GenerationConfig.from_pretrained(tmp_path / "m").eos_token_id
    assert saved.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])
