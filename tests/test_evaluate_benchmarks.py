"""Benchmark registry, loaders (local files in Hub schemas), the safe unpickler, prompt templates."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib

import pytest

from branchmerge.benchmarks import loaders as benchmarks
from branchmerge.benchmarks.loaders import lcb_release_files, load_benchmark, load_problems
from branchmerge.benchmarks.registry import get_spec, list_benchmarks, resolve
from branchmerge.benchmarks.safe_pickle import UnsafePickleError, decode_test_cases, safe_loads
from branchmerge.errors import UserError
from branchmerge.evaluate.prompts import Renderer, messages_for, template_opens_think, user_message
from tests.conftest import BENCHMARKS
from tests.evaluate_helpers import lcb_private, write_gpqa_csv, write_lcb_jsonl

MATH = {"aime24": 6, "aime25": 4, "amc23": 4, "math500": 8}


def test_registry_lists_the_paper_benchmarks():
    assert set(list_benchmarks()) == {"aime24", "aime25", "amc23", "math500", "gpqa_diamond", "livecodebench"}
    assert get_spec("gpqa_diamond").shuffle and get_spec("gpqa_diamond").gated
    assert get_spec("aime24").grader == {"gold_format": "int"}
    assert get_spec("math500").grader == {"gold_format": "latex"}
    with pytest.raises(UserError, match="unknown benchmark 'aime23'"):
        get_spec("aime23")


@pytest.mark.parametrize("name", sorted(MATH))
def test_math_benchmarks_load_from_local_files(name):
    rows = load_problems(name, data=str(BENCHMARKS / f"{name}.jsonl"))
    assert len(rows) == MATH[name]
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["domain"] == "math" and row["source"] == name
        assert row["prompt"] and isinstance(row["reference"], str) and row["reference"]
    assert len(load_problems(name, data=str(BENCHMARKS / f"{name}.jsonl"), limit=3)) == 3


def test_local_version_is_the_file_hash():
    loaded = load_benchmark(get_spec("aime24"), data=str(BENCHMARKS / "aime24.jsonl"))
    assert loaded.version.startswith("aime24.jsonl@") and len(loaded.version.split("@")[1]) == 12
    assert loaded.source["num_rows"] == 6
    assert loaded.rows[0]["reference"] == "104"


def test_gpqa_fixture_in_hub_schema(tmp_path):
    path = write_gpqa_csv(tmp_path / "gpqa_diamond.csv")
    rows = load_problems("gpqa_diamond", data=str(path))
    assert [r["id"] for r in rows] == ["rec000", "rec001", "rec002", "rec003"]
    first = rows[0]
    assert first["domain"] == "science"
    assert first["prompt"] == "Which made-up particle number 0 is stable?"  # stray whitespace stripped
    assert first["reference"] == {"answer": "A", "options": {"A": "right-0", "B": "wrong-a-0", "C": "wrong-b-0",
                                                             "D": "wrong-c-0"}}
    assert first["meta"]["domain"] == "Physics"


def test_gpqa_prompt_is_simple_evals_with_the_shown_options(tmp_path):
    from branchmerge.verify import shuffle_options

    row = load_problems("gpqa_diamond", data=str(write_gpqa_csv(tmp_path / "g.csv")))[0]
    spec = get_spec("gpqa_diamond")
    shown = [shuffle_options(row["reference"], row["id"], s, 0) for s in range(8)]
    texts = [user_message(spec.template, row, ref) for ref in shown]
    assert len(set(texts)) > 1  # each sample its own option order
    for ref, text in zip(shown, texts):
        assert text.startswith("Answer the following multiple choice question.")
        assert f"{ref['answer']}) right-0" in text  # the gold letter points at the correct text
        assert "Which made-up particle number 0 is stable?" in text


def test_gated_hub_dataset_gives_a_clear_message(monkeypatch):
    import datasets

    def refuse(*args, **kwargs):
        raise ConnectionError("401 Client Error: Access to dataset Idavidrein/gpqa is restricted (gated)")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(benchmarks, "_resolve_revision", lambda *a: None)
    with pytest.raises(UserError, match="gated: accept its terms.*--data"):
        load_problems("gpqa_diamond")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'Idavidrein/gpqa' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="Check the network.*--data.*gated: accept its terms"):
        load_problems("gpqa_diamond")


def test_hub_loading_passes_id_config_split_and_revision(monkeypatch):
    import datasets

    seen = {}

    def fake(path, name=None, split=None, revision=None, **kw):
        seen.update(path=path, name=name, split=split, revision=revision)
        return [{"problem": "1+1?", "answer": "2", "id": 7}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setattr(benchmarks, "_resolve_revision", lambda dataset_id, revision: "abc123def456")
    loaded = load_benchmark(get_spec("math500"))
    assert seen == {"path": "HuggingFaceH4/MATH-500", "name": None, "split": "test", "revision": "abc123def456"}
    assert loaded.version == "HuggingFaceH4/MATH-500@abc123def456"
    assert loaded.rows[0]["id"] == "7"


def test_livecodebench_hub_loads_the_release_files_at_the_resolved_revision(monkeypatch, tmp_path):
    import datasets

    seen = {}

    def fake(builder, data_files=None, split=None, **kw):
        seen.update(builder=builder, data_files=data_files, split=split)
        return [json.loads(line) for line in write_lcb_jsonl(tmp_path / "l.jsonl").read_text().splitlines()]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setattr(benchmarks, "_resolve_revision", lambda dataset_id, revision: "0123abcd")
    loaded = load_benchmark(get_spec("livecodebench"), release="v4_v5")
    assert seen["builder"] == "json" and seen["split"] == "train"
    assert seen["data_files"] == [
        "hf://datasets/livecodebench/code_generation_lite@0123abcd/test4.jsonl",
        "hf://datasets/livecodebench/code_generation_lite@0123abcd/test5.jsonl",
    ]
    assert loaded.version == "livecodebench/code_generation_lite@0123abcd"
    assert loaded.source["options"] == {"release": "v4_v5", "date_window": "2024-08-01..2025-02-01"}
    assert loaded.source["num_rows"] == 2  # the problem count inside the window is recorded


def test_livecodebench_fixture_window_release_and_tests(tmp_path):
    path = write_lcb_jsonl(tmp_path / "lcb.jsonl")
    rows = load_problems("livecodebench", data=str(path))  # default window 2024-08-01..2025-02-01
    assert [r["id"] for r in rows] == ["abc900_a", "has-k"]
    stdin, functional = rows
    assert stdin["reference"] == {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}  # public + private
    assert functional["reference"] == {"inputs": ["[1, 2, 3]\n2"], "outputs": ["true"], "fn_name": "hasK"}
    assert stdin["meta"]["difficulty"] == "easy" and functional["meta"]["platform"] == "leetcode"
    everything = load_problems("livecodebench", data=str(path), date_window="all")
    assert len(everything) == 3
    early = load_problems("livecodebench", data=str(path), date_window="2024-01-01..2024-09-01")
    assert [r["id"] for r in early] == ["abc900_a", "1900A"]  # the end date itself (midnight) is inside
    with pytest.raises(UserError, match="bad --date-window"):
        load_problems("livecodebench", data=str(path), date_window="2025..2024")


def test_livecodebench_prompt_starter_vs_stdin(tmp_path):
    rows = load_problems("livecodebench", data=str(write_lcb_jsonl(tmp_path / "lcb.jsonl")))
    spec = get_spec("livecodebench")
    stdin, functional = (user_message(spec.template, r) for r in rows)
    assert "Question: Read a and b, print a+b." in stdin and "Read the inputs from stdin" in stdin
    assert "# YOUR CODE HERE" in stdin and "starter code" not in stdin
    assert "use the following starter code" in functional and "def hasK(self" in functional


def test_livecodebench_problem_without_tests_is_refused(tmp_path):
    from tests.evaluate_helpers import lcb_rows

    row = lcb_rows()[0] | {"public_test_cases": "[]", "private_test_cases": ""}
    with pytest.raises(UserError, match="no test cases"):
        load_problems("livecodebench", data=str(write_lcb_jsonl(tmp_path / "x.jsonl", [row])))


def test_release_files():
    assert lcb_release_files("v5") == ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl"]
    assert lcb_release_files("release_v2") == ["test.jsonl", "test2.jsonl"]
    assert lcb_release_files("v4_v5") == ["test4.jsonl", "test5.jsonl"]
    assert len(lcb_release_files("latest")) == 6
    with pytest.raises(UserError, match="unknown LiveCodeBench release"):
        lcb_release_files("v9")


def test_safe_unpickler_reads_plain_data():
    tests = [{"input": "1\n", "output": "2\n"}]
    assert decode_test_cases(lcb_private(tests)) == tests
    assert decode_test_cases(json.dumps(tests)) == tests
    assert safe_loads(pickle.dumps({"a": [1, 2.5, None, (3, "x")], "s": {1, 2}}, protocol=2)) == {
        "a": [1, 2.5, None, (3, "x")], "s": {1, 2}}


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_safe_unpickler_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(str(marker)))
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        safe_loads(payload)
    blob = base64.b64encode(zlib.compress(payload)).decode()
    with pytest.raises(UnsafePickleError):
        decode_test_cases(blob)
    assert not marker.exists()
    # and through the loader: a clear error naming the row
    from tests.evaluate_helpers import lcb_rows

    row = lcb_rows()[0] | {"private_test_cases": blob}
    with pytest.raises(UserError, match="row 1: refusing to load"):
        load_problems("livecodebench", data=str(write_lcb_jsonl(tmp_path / "evil.jsonl", [row])))
    assert not marker.exists()


def test_zlib_bomb_is_capped():
    blob = base64.b64encode(zlib.compress(pickle.dumps("x" * 5_000_000))).decode()
    with pytest.raises(ValueError, match="exceeds"):
        decode_test_cases(blob, limit=1_000_000)


def test_r1_math_prompt_has_no_system_turn_and_the_boxed_directive():
    spec = get_spec("aime24")
    chat = messages_for(spec.template, {"prompt": "Find $x$ if $x^{2}=4$.", "reference": "2", "meta": {}})
    assert [m["role"] for m in chat] == ["user"]
    assert chat[0]["content"] == (
        "Find $x$ if $x^{2}=4$.\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


def test_user_yaml_benchmark(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps({"id": "q1", "prompt": "2+2?", "reference": "4"}) + "\n")
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text(
        "benchmarks:\n"
        "  toy:\n    domain: math\n    loader: rows\n    template: r1_math\n    n: 3\n    grader: {gold_format: int}\n"
        "  toy_custom:\n    domain: math\n    loader: rows\n    n: 1\n"
        "    template: {user: 'Q: {prompt} Box it: \\boxed{}'}\n"
    )
    specs = resolve(str(yaml_file))
    assert [s.name for s in specs] == ["toy", "toy_custom"]
    assert get_spec(f"{yaml_file}:toy").n == 3
    rows = load_problems(f"{yaml_file}:toy_custom", data=str(data))
    assert rows[0]["domain"] == "math" and rows[0]["source"] == "toy_custom"
    assert user_message(get_spec(f"{yaml_file}:toy_custom").template, rows[0]) == "Q: 2+2? Box it: \\boxed{}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks:\n  x:\n    domain: math\n    tempalte: r1_math\n")
    with pytest.raises(UserError, match="unknown field.*tempalte"):
        resolve(str(bad))


class _Tok:
    def __init__(self, template: str | None, suffix: str) -> None:
        self.chat_template = template
        self.suffix = suffix

    def apply_chat_template(self, chat, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in chat) + self.suffix


def test_think_prefix_detection_and_force(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert template_opens_think(tok) is True  # the tiny template opens <think>\n like R1-Distill
    chat = [{"role": "user", "content": "hi"}]
    r = Renderer(tok, force_think=True)
    assert r.think.to_dict() == {"template_opens_think": True, "forced": False}  # nothing to add
    fields, _ = r.request_fields(chat)
    assert "messages" in fields
    old = _Tok("x", "<assistant>")
    assert template_opens_think(old) is False
    forced = Renderer(old, force_think=True)
    assert forced.think.to_dict() == {"template_opens_think": False, "forced": True}
    fields, digest = forced.request_fields(chat)
    assert fields == {"prompt": "<user>hi<assistant><think>\n"}
    assert digest != Renderer(old).request_fields(chat)[1]
    assert Renderer(None).think.template_opens_think is None
    with pytest.raises(UserError, match="--force-think needs the model's tokenizer"):
        Renderer(None, force_think=True)
