"""Each curation route end to end on small local data: outputs, funnel, rejected reasons, card, loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchmerge.cli import app
from branchmerge.curate import CurateConfig, curate, write_card
from branchmerge.errors import UserError
from branchmerge.records import RunStore, read_parquet_rows
from tests.conftest import BENCHMARKS
from tests.curate_helpers import (
    math_problem,
    mc_rows,
    openr1_rows,
    openthoughts_code_rows,
    teacher_responder,
    write_jsonl,
)
from tests.openai_server import ChatServer

AIME = f"aime24={BENCHMARKS / 'aime24.jsonl'}"


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def _funnel(out: Path) -> dict[str, dict]:
    return {s["stage"]: s for s in _stats(out)["funnel"]}


def _rows(out: Path, folder: str) -> list[dict]:
    return [r for f in sorted((out / folder).glob("*.parquet")) for r in read_parquet_rows(f)]


def test_math_replay_of_openr1_rows(tmp_path):
    rows = openr1_rows(12)
    rows.append({**rows[0], "uuid": "copy"})  # exact duplicate problem
    aime = json.loads((BENCHMARKS / "aime24.jsonl").read_text().splitlines()[3])["problem"]
    rows.append({**rows[1], "problem": aime, "uuid": "leak"})  # contaminated, correct generations
    src = write_jsonl(tmp_path / "openr1.jsonl", rows, extra_lines=("{torn",))
    out = tmp_path / "out"
    cfg = CurateConfig(domain="math", source=str(src), out=str(out), teacher="replay", decontam=[AIME],
                       where={"question_type": ["math-word-problem"]}, select="first")
    assert curate(cfg) == out

    funnel = _funnel(out)
    assert funnel["source"] == {"stage": "source", "unit": "source rows", "in": 15, "out": 13, "dropped": 2,
                                "reasons": {"malformed": 1, "where": 1}}
    assert funnel["generate"]["out"] == 26
    # problems 0, 3, 6, 9 (and the copy of 0) have a wrong second generation; problem 5 was filtered out
    assert funnel["verify"]["reasons"] == {"incorrect": 5}
    assert funnel["dedup"]["reasons"] == {"exact_duplicate": 1}
    assert funnel["decontam"]["reasons"] == {"contaminated": 2}
    assert funnel["select"]["reasons"] == {"not_selected": 7}  # 7 problems with two correct traces keep one
    data = _rows(out, "data")
    assert len(data) == 11 and [r["sample_idx"] for r in data] == [0] * 11
    first = data[0]
    assert first["messages"][0] == {"role": "user", "content": first["prompt"]}
    assert first["messages"][1]["content"] == f"<think>\n{first['reasoning']}\n</think>\n\n{first['answer']}"
    assert first["verdict"] == "correct" and first["reference"] == "3"

    rejected = _rows(out, "rejected")
    assert len(rejected) == 2 + 5 + 1 + 2 + 7
    leak = [r for r in rejected if r["reason"] == "contaminated"]
    assert all(re.search(r"aime24/\S+", r["detail"]) for r in leak)
    wrong = [r for r in rejected if r["reason"] == "incorrect"][0]
    assert wrong["stage"] == "verify" and "extracted '4'" in wrong["detail"] and "gold '3'" in wrong["detail"]
    stats = _stats(out)
    assert stats["kind"] == "curation" and stats["rows"] == 11 and stats["problems"] == 11
    assert stats["source"]["adapter"] == "openr1-math"
    assert stats["source_labels"] == {"both_correct": 21, "both_not_correct": 5}
    assert stats["decontamination"]["loaded"] == {"aime24": 6}

    card = (out / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "size_categories:\n- n<1K" in front and "task_categories:" in front and "license:" in front
    assert "| verify |" in card and "incorrect: 5" in card and "contaminated: 2" in card
    assert "11 verified math reasoning traces" in card
    (out / "README.md").unlink()
    write_card(out)
    assert (out / "README.md").read_text() == card

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert len(ds) == 11 and ds[0]["messages"][1]["role"] == "assistant"


def test_trl_reads_the_messages(tmp_path):
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from branchmerge.tiny import train_tokenizer

    src = write_jsonl(tmp_path / "openr1.jsonl", openr1_rows(3))
    out = curate(CurateConfig(domain="math", source=str(src), out=str(tmp_path / "o"), decontam=[]))
    row = _rows(out, "data")[0]
    example = {"messages": row["messages"]}
    assert is_conversational(example)
    tok = train_tokenizer([row["completion"]] * 3, vocab_size=300)
    text = maybe_apply_chat_template(example, tok)["text"]
    assert "<|im_start|>assistant\n<think>\n" in text and row["answer"] in text


def test_math_with_a_local_teacher_server(tmp_path):
    problems = [{"problem": math_problem(i), "answer": str((i + 2) + (i * 3 + 1))} for i in range(12)]
    src = write_jsonl(tmp_path / "numina.jsonl", problems)
    out = tmp_path / "out"
    with ChatServer(responder=teacher_responder()) as server:
        cfg = CurateConfig(domain="math", source=str(src), out=str(out), teacher="deepseek-r1",
                           base_url=server.url, teacher_options={"concurrency": 4}, n_samples=2,
                           max_new_tokens=512, decontam=[AIME], select="shortest", max_per_problem=1)
        curate(cfg)
        assert server.total_requests == 24
    funnel = _funnel(out)
    assert funnel["generate"]["out"] == 24
    assert funnel["verify"]["reasons"] == {"incorrect": 4, "truncated": 4}  # problems 3, 9 wrong; 5, 11 cut off
    assert funnel["format"]["reasons"] == {"repetition": 4}  # problems 4 and 10 loop
    assert funnel["select"]["reasons"] == {"not_selected": 6}
    data = _rows(out, "data")
    assert sorted(int(re.search(r"Problem (\d+):", r["prompt"]).group(1)) for r in data) == [0, 1, 2, 6, 7, 8]
    stats = _stats(out)
    assert stats["teacher"]["engine"] == "openai" and stats["teacher"]["model"] == "deepseek-reasoner"
    assert stats["sampling"]["n"] == 2 and stats["sampling"]["max_tokens"] == 512
    assert stats["sampling"]["temperature"] == 0.6  # from the preset
    assert {b["model"] for b in server.bodies} == {"deepseek-reasoner"}
    assert stats["teacher_tokens"]["completion"] == sum(2 * (10 + i) for i in range(12))
    assert stats["token_lengths"]["count"] == 6 and stats["token_lengths"]["measure"] == "teacher completion tokens"


def test_code_route_runs_tests_in_the_sandbox(tmp_path):
    from branchmerge.tiny import train_tokenizer

    src = write_jsonl(tmp_path / "ot.jsonl", openthoughts_code_rows())
    tok = tmp_path / "tok"
    train_tokenizer(["def f(): return 1"] * 3, vocab_size=300).save_pretrained(tok)
    out = tmp_path / "out"
    curate(CurateConfig(domain="code", source=str(src), out=str(out), decontam=[], workers=1,
                        student_tokenizer=str(tok), max_tokens_length=100_000))
    funnel = _funnel(out)
    assert funnel["source"]["reasons"] == {"malformed": 1, "other_domain": 1}
    assert funnel["verify"]["reasons"] == {"incorrect": 1, "unparsed": 1}
    data = _rows(out, "data")
    assert len(data) == 1 and data[0]["verdict"] == "correct" and data[0]["num_tokens"] > 10
    assert _stats(out)["token_lengths"]["measure"].startswith("student tokens")

    strict = tmp_path / "strict"
    curate(CurateConfig(domain="code", source=str(src), out=str(strict), decontam=[], workers=1,
                        student_tokenizer=str(tok), max_tokens_length=5))
    assert _funnel(strict)["length"]["reasons"] == {"too_long": 1}


def test_science_multiple_choice_with_a_column_map(tmp_path):
    src = write_jsonl(tmp_path / "mc.jsonl", mc_rows())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "curate", "science", "--source", str(src), "--out", str(out), "--teacher", "replay",
        "--map", "prompt=q,options=opts,answer=gold", "--map", "completion=response", "--decontam", "none",
    ])
    assert result.exit_code == 0, result.output
    funnel = _funnel(out)
    assert funnel["verify"]["reasons"] == {"incorrect": 1}
    data = _rows(out, "data")
    assert len(data) == 3 and all(r["reference"]["answer"] in "ABCD" for r in data)
    assert "A) Oxygen" in data[0]["prompt"] and "Answer: $LETTER" in data[0]["prompt"]
    card = (out / "README.md").read_text()
    (out / "README.md").unlink()
    result = CliRunner().invoke(app, ["curate", "card", str(out)])
    assert result.exit_code == 0 and (out / "README.md").read_text() == card

    loose = tmp_path / "loose"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"source: {src}\nout: {loose}\nmap: {{prompt: q, completion: response}}\n"
                   "require_correct: false\ndecontam: []\n")
    result = CliRunner().invoke(app, ["curate", "science", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert len(_rows(loose, "data")) == 4  # open questions kept unverified, as TinyR1's science seeds


def test_cli_errors_are_user_errors(tmp_path):
    src = write_jsonl(tmp_path / "odd.jsonl", [{"text": "hi", "label_x": 1}])
    result = CliRunner().invoke(app, ["curate", "math", "--source", str(src), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, UserError) and "columns found: text, label_x" in str(result.exception)
    with pytest.raises(UserError, match="--max-tokens-length needs --student-tokenizer"):
        curate(CurateConfig(domain="math", source=str(src), out=str(tmp_path / "p"), max_tokens_length=10))


def test_rerun_without_resume_refuses_and_resume_is_idempotent(tmp_path):
    src = write_jsonl(tmp_path / "openr1.jsonl", openr1_rows(4))
    out = tmp_path / "out"
    cfg = dict(domain="math", source=str(src), out=str(out), decontam=[])
    curate(CurateConfig(**cfg))
    before = _rows(out, "data")
    with pytest.raises(UserError, match="--resume"):
        curate(CurateConfig(**cfg))
    curate(CurateConfig(**cfg, resume=True))
    assert _rows(out, "data") == before
    with pytest.raises(UserError, match="other settings.*prompt_template"):
        curate(CurateConfig(**cfg, resume=True, prompt_template="Solve: {problem}"))
    assert len(RunStore(out).shards()) == 2 and len(RunStore(out)) == 8


def test_hub_source_is_recognised_from_its_columns(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load(path, name=None, split=None, revision=None, streaming=False):
        calls.append((path, name, split, revision, streaming))
        ds = datasets.Dataset.from_list(openr1_rows(4))
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    out = curate(CurateConfig(domain="math", source="open-r1/OpenR1-Math-220k", subset="default",
                              revision="abc123", out=str(tmp_path / "o"), decontam=[], limit=3))
    assert calls == [("open-r1/OpenR1-Math-220k", "default", "train", "abc123", True)]
    stats = _stats(out)
    assert stats["source"]["adapter"] == "openr1-math" and stats["source"]["kind"] == "hub"
    assert _funnel(out)["source"]["out"] == 3
    front = (out / "README.md").read_text().split("---\n")[1]
    assert "license: apache-2.0" in front and "source_datasets:\n- open-r1/OpenR1-Math-220k" in front


def test_length_limit_with_first_selection_falls_back_to_the_next_sample(tmp_path):
    from branchmerge.tiny import train_tokenizer

    rows = openr1_rows(4)
    for i in (1, 2):  # a long first trace: over the limit, so the second (correct) one is kept instead
        rows[i]["generations"][0] = rows[i]["generations"][0].replace("\n</think>", " " + "carry the one. " * 200
                                                                      + "\n</think>")
    src = write_jsonl(tmp_path / "openr1.jsonl", rows)
    tok = tmp_path / "tok"
    train_tokenizer([r["generations"][0] for r in rows], vocab_size=300).save_pretrained(tok)
    out = curate(CurateConfig(domain="math", source=str(src), out=str(tmp_path / "o"), decontam=[],
                              select="first", student_tokenizer=str(tok), max_tokens_length=400))
    assert _funnel(out)["length"]["reasons"] == {"too_long": 2}
    data = _rows(out, "data")
    assert [(r["id"][-1], r["sample_idx"]) for r in data] == [("0", 0), ("1", 1), ("2", 1), ("3", 0)]
    assert all(0 < r["num_tokens"] <= 400 for r in data)


def test_token_statistics_of_a_large_run_are_a_labelled_estimate(tmp_path, monkeypatch):
    """Rows whose byte length proves they fit are sampled for the card, not all tokenized; the same
    rows are kept either way, and the statistics say they are estimated."""
    import branchmerge.curate.pipeline as pipeline
    from branchmerge.tiny import train_tokenizer

    rows = openr1_rows(6)
    src = write_jsonl(tmp_path / "openr1.jsonl", rows)
    tok = tmp_path / "tok"
    train_tokenizer([r["generations"][0] for r in rows], vocab_size=300).save_pretrained(tok)
    config = dict(domain="math", source=str(src), decontam=[], select="first", student_tokenizer=str(tok),
                  max_tokens_length=100_000)
    exact = curate(CurateConfig(out=str(tmp_path / "exact"), **config))
    monkeypatch.setattr(pipeline, "LENGTH_SAMPLE", 2)
    sampled = curate(CurateConfig(out=str(tmp_path / "sampled"), **config))
    assert [r["id"] for r in _rows(exact, "data")] == [r["id"] for r in _rows(sampled, "data")]
    full, estimate = _stats(exact)["token_lengths"], _stats(sampled)["token_lengths"]
    assert "estimated" not in full["measure"] and "estimated: 2 of" in estimate["measure"]
    assert estimate["count"] == full["count"] == len(_rows(exact, "data"))
    assert sum(1 for r in _rows(sampled, "data") if r["num_tokens"] is not None) == 2
