"""Curation building blocks: schema recognition, adapters, filters, dedup, decontamination, config, card."""

from __future__ import annotations

import json

import pytest

from branchmerge.curate import adapters, dedup, filters
from branchmerge.curate.adapters import AdapterContext, adapt, choose_adapter, recognise
from branchmerge.curate.config import CurateConfig
from branchmerge.curate.decontam import build_index
from branchmerge.curate.sources import open_source
from branchmerge.errors import UserError
from tests.conftest import BENCHMARKS
from tests.curate_helpers import REPEAT_LINE, openr1_rows, openthoughts_code_rows, write_jsonl


def _ctx(domain: str, mapping: dict[str, str] | None = None) -> AdapterContext:
    return AdapterContext(domain, "local/test", None, mapping or {})


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (list(openr1_rows(1)[0]), "openr1-math"),
        (["system", "conversations"], "openthoughts"),
        (list(openthoughts_code_rows()[0]), "openthoughts"),
        (["question", "solutions", "input_output", "difficulty", "starter_code"], "code-tests"),
        (["description", "official_tests", "id"], "code-tests"),
        (["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"],
         "multiple-choice"),
        (["question", "choices", "answer"], "multiple-choice"),
        (["problem", "solution", "messages"], "numina"),
        (["text", "label_x"], None),
    ],
)
def test_schemas_are_recognised_from_columns(columns, expected):
    assert recognise(columns) == expected


def test_unknown_schema_error_lists_the_columns_and_map_checks_them():
    with pytest.raises(UserError, match="columns found: text, label_x.*--map"):
        choose_adapter(["text", "label_x"], "math", "my.jsonl", None, {})
    with pytest.raises(UserError, match="nope that my.jsonl lacks"):
        choose_adapter(["text"], "math", "my.jsonl", None, {"prompt": "nope"})
    with pytest.raises(UserError, match="not code"):
        choose_adapter(list(openr1_rows(1)[0]), "code", "x", None, {})
    assert choose_adapter(["text", "gold"], "math", "x", None, {"prompt": "text", "answer": "gold"}) == "map"


def test_local_jsonl_source_and_malformed_lines(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", openr1_rows(2), extra_lines=("{broken", "[1, 2]"))
    source = open_source(str(path))
    assert recognise(source.columns) == "openr1-math"
    items = [adapt("openr1-math", raw, i, _ctx("math"), {}) for i, raw in source.rows()]
    assert [it.reject for it in items] == [None, None, "malformed", "malformed"]
    assert "s.jsonl:3" in items[2].detail
    first = items[0]
    assert first.problem["reference"] == "3" and len(first.replays) == 2
    assert first.problem["prompt"].endswith("\\boxed{}.") and first.problem["meta"]["source_id"] == "uuid-0"
    with pytest.raises(UserError, match="no such file"):
        open_source(str(tmp_path / "missing.jsonl"))


def test_where_filter_and_openthoughts_domains(tmp_path):
    raw = openr1_rows(6)[5]
    assert adapt("openr1-math", raw, 5, _ctx("math"), {"question_type": ["math-word-problem"]}).reject == "where"
    rows = openthoughts_code_rows()
    items = [adapt("openthoughts", r, i, _ctx("code"), {}) for i, r in enumerate(rows)]
    assert [it.reject for it in items] == [None, None, None, "other_domain", "malformed"]
    assert items[0].problem["reference"] == {"inputs": ["1 2\n", "10 5\n"], "outputs": ["3\n", "15\n"]}
    assert items[0].replays[0].startswith("<think>\nRead a and b") and "```python" in items[0].replays[0]
    assert "standard input" in items[0].problem["prompt"]


def test_openthoughts_conversations_are_rewritten_to_think_layout():
    row = {"system": "sys", "conversations": [
        {"from": "user", "value": "Explain osmosis."},
        {"from": "assistant", "value": "<|begin_of_thought|>\n\nWater moves.\n\n<|end_of_thought|>\n\n"
                                       "<|begin_of_solution|>\n\nAcross a membrane.\n\n<|end_of_solution|>"}]}
    item = adapt("openthoughts", row, 0, AdapterContext("science", "ot", None, {}, has_domain_column=False), {})
    assert item.replays == ["<think>\nWater moves.\n</think>\n\nAcross a membrane."]
    assert item.problem["reference"] is None


def test_code_multiple_choice_numina_and_map_adapters():
    taco = {"question": "Sum two numbers.", "input_output": json.dumps({"inputs": ["1 2"], "outputs": ["3"],
                                                                          "fn_name": "add"}), "starter_code": "def add(a, b):"}
    item = adapt("code-tests", taco, 0, _ctx("code"), {})
    assert item.problem["reference"]["fn_name"] == "add" and "def add(a, b):" in item.problem["prompt"]
    cf = {"description": "Echo.", "official_tests": [{"input": "x\n", "output": "x\n"}]}
    assert adapt("code-tests", cf, 1, _ctx("code"), {}).problem["reference"] == {"inputs": ["x\n"], "outputs": ["x\n"]}
    cc = {"question": "Echo.", "input_output": {"input": ["a\n"], "output": ["a\n"]}}
    assert adapt("code-tests", cc, 1, _ctx("code"), {}).problem["reference"] == {"inputs": ["a\n"], "outputs": ["a\n"]}
    empty = {"question": "Sum.", "input_output": json.dumps({"inputs": [], "outputs": []})}
    assert adapt("code-tests", empty, 2, _ctx("code"), {}).reject == "malformed"

    gpqa = {"Question": "Pick the noble gas.", "Correct Answer": "Neon", "Incorrect Answer 1": "Iron",
            "Incorrect Answer 2": "Tin", "Incorrect Answer 3": "Lead"}
    ref = adapt("multiple-choice", gpqa, 0, _ctx("science"), {}).problem["reference"]
    assert ref["options"][ref["answer"]] == "Neon" and sorted(ref["options"]) == ["A", "B", "C", "D"]
    assert adapt("multiple-choice", gpqa, 0, _ctx("science"), {}).problem["reference"] == ref  # stable shuffle
    mmlu = {"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1}
    item = adapt("multiple-choice", mmlu, 0, _ctx("science"), {})
    assert item.problem["reference"]["answer"] == "B" and "B) 4" in item.problem["prompt"]
    assert adapt("multiple-choice", {**mmlu, "answer": "7"}, 0, _ctx("science"), {}).reject == "malformed"

    numina = {"problem": "Compute 1+1.", "solution": "It is \\boxed{\\frac{4}{2}}."}
    assert adapt("numina", numina, 0, _ctx("math"), {}).problem["reference"] == "\\frac{4}{2}"
    assert adapt("numina", {"problem": "Prove it.", "answer": "proof"}, 0, _ctx("math"), {}).reject == "malformed"

    mapped = {"q": "What is 6*7?", "gold": "42", "out": ["<think>\nsix sevens\n</think>\n\n\\boxed{42}"]}
    item = adapt("map", mapped, 3, _ctx("math", {"prompt": "q", "answer": "gold", "completion": "out"}), {})
    assert item.problem["reference"] == "42" and item.replays == mapped["out"]
    assert item.problem["id"].endswith("0000003")


def test_format_checks():
    ok = {"completion": "<think>\nwork\n</think>\n\nanswer", "reasoning": "work", "answer": "answer",
          "finish_reason": "stop"}
    assert filters.format_problem(ok) is None
    assert filters.format_problem({**ok, "finish_reason": "length"})[0] == "truncated"
    assert filters.format_problem({**ok, "finish_reason": "error"})[0] == "teacher_error"
    assert filters.format_problem({**ok, "completion": "no tags at all"})[0] == "think_block"
    two = "<think>\na\n</think>\n<think>\nb\n</think>\n\nanswer"
    assert filters.format_problem({**ok, "completion": two})[0] == "think_block"
    assert filters.format_problem({**ok, "answer": "  "})[0] == "empty_answer"
    assert filters.format_problem({**ok, "reasoning": ""})[0] == "empty_reasoning"


def test_repetition_detector_flags_loops_not_prose():
    prose = " ".join(f"Step {i}: we multiply {i} by {i * 7 % 13} and compare with the bound {i * i}." for i in range(400))
    assert filters.repetition(prose) is None
    assert "repeated 40 times" in filters.repetition("\n".join([REPEAT_LINE] * 40))
    loop = prose[:3000] + "so the answer is so the answer is " * 300
    assert "compress" in filters.repetition(loop)


def test_exact_and_near_duplicates_keep_the_first():
    base = ("A train leaves the station at noon travelling east at sixty miles per hour while a second train "
            "leaves two hours later travelling at eighty miles per hour. When does the second catch the first?")
    near = base.replace("noon", "midday")  # one word changed: Jaccard of 5-shingles ~0.85
    other = "Find all real numbers x such that the square of x minus five times x plus six equals zero exactly."
    texts = [base, other, base.upper(), near, other + " Show your work."]
    dups = dedup.find_duplicates(texts, threshold=0.7)
    assert dups[2].kept == 0 and dups[2].kind == "exact"
    assert dups[3].kept == 0 and dups[3].kind == "near" and dups[3].similarity >= 0.7
    assert 1 not in dups and 0 not in dups
    assert 4 not in dedup.find_duplicates(texts, threshold=0.95)


def test_minhash_estimates_jaccard():
    words = [f"w{i}" for i in range(200)]
    a, b = " ".join(words), " ".join(words[:150] + [f"x{i}" for i in range(50)])
    sig = dedup.MinHasher(perms=256, shingle_words=1).signatures([a, b])
    estimate = (sig[0] == sig[1]).mean()
    assert abs(estimate - 150 / 250) < 0.08
    assert dedup.lsh_bands(128, 0.8) == (16, 8)


def test_decontamination_flags_benchmark_overlap_but_not_boilerplate():
    index = build_index([f"aime24={BENCHMARKS / 'aime24.jsonl'}", "no-such-benchmark"], n=8)
    assert index.loaded == {"aime24": 6}
    assert len(index.warnings) == 1 and "no-such-benchmark SKIPPED" in index.warnings[0]
    aime = json.loads((BENCHMARKS / "aime24.jsonl").read_text().splitlines()[0])["problem"]
    hit = index.hits("Rephrased: " + aime[:200] + "\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert hit is not None and hit.startswith("aime24/")
    clean = "Every morning Bob jogs around the lake. How far does he go in a week?\n" \
            "Please reason step by step, and put your final answer within \\boxed{}."
    assert index.hits(clean) is None


def test_config_file_and_flags(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("source: a.jsonl\nselect: shortest\nmax-per-problem: 2\nwhere: {question_type: proof}\n")
    cfg = CurateConfig.build(cfg_file, domain="math", out="o", select=None, max_per_problem=3)
    assert (cfg.select, cfg.max_per_problem, cfg.where) == ("shortest", 3, {"question_type": ["proof"]})
    assert cfg.decontam_benchmarks == ["aime24", "aime25", "amc23", "math500"]
    cfg_file.write_text("sauce: a.jsonl\n")
    with pytest.raises(UserError, match="unknown curation setting.*sauce"):
        CurateConfig.build(cfg_file, domain="math", out="o")
    with pytest.raises(UserError, match="--select: unknown select .best.; valid: first, shortest, all"):
        CurateConfig(domain="math", source="s", out="o", select="best")


# An R1-Distill-like template: assistant history keeps only the text after </think>.
R1_LIKE = (
    "{%- for m in messages -%}{%- if m['role'] == 'assistant' -%}"
    "{%- set c = m['content'] -%}{%- if '</think>' in c -%}{%- set c = c.split('</think>')[-1] -%}{%- endif -%}"
    "{{ '<|im_start|>assistant' + c + '<|im_end|>' }}{%- else -%}{{ '<|im_start|>' + m['content'] }}{%- endif -%}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant<think>\\n' }}{%- endif -%}"
)


@pytest.mark.parametrize("template", ["r1", "model", "qwen", "chatml"])
def test_token_length_counts_what_training_encodes(tmp_path, template):
    """The length filter measures an example exactly as ``train`` encodes it, reasoning included,
    under the template training uses; rendering the whole chat through an R1 template would not."""
    from transformers import AutoTokenizer

    from branchmerge.chat import ChatFormat, use_template
    from branchmerge.tiny import train_tokenizer

    text = "hello world <think> reasoning about sums </think> answer"
    tok = train_tokenizer([text] * 5, vocab_size=300)
    if template == "r1":
        tok.chat_template = R1_LIKE
    tok.save_pretrained(tmp_path / "tok")
    choice = "model" if template == "r1" else template
    counter = filters.TokenLength(str(tmp_path / "tok"), choice)
    chat = filters.messages({"prompt": "hello", "reasoning": "world " * 40, "answer": "answer"})
    [n] = counter.count([chat])

    reference = AutoTokenizer.from_pretrained(tmp_path / "tok")
    encoded = ChatFormat.for_tokenizer(reference, use_template(reference, choice)).encode(chat)
    assert n == len(encoded["input_ids"])
    assert n > 40  # the reasoning is counted
    whole = len(reference.apply_chat_template(chat, tokenize=True)["input_ids"])
    if template == "r1":
        assert whole < 20  # what the old whole-chat render counted: prompt and answer only
    assert counter.within(counter.pieces(chat), n + len(str(chat)) * 4)
    assert not counter.within(counter.pieces(chat), n)
    assert adapters.last_boxed("a \\boxed{1} b \\boxed{x^{2}}") == "x^{2}"


def test_weighted_length_statistics_equal_the_full_counts_they_stand_for():
    """A counted row of weight w stands for w rows: the estimate equals the statistics of the expanded set."""
    from branchmerge.curate.pipeline import length_stats

    lengths, weights = [100, 200, 300, 4000], [3.0, 1.0, 2.0, 1.0]
    expanded = [x for x, w in zip(lengths, weights, strict=True) for _ in range(int(w))]
    estimate, full = length_stats(lengths, "tokens", weights), length_stats(expanded, "tokens")
    assert estimate["count"] == full["count"] == 7
    assert estimate["mean"] == full["mean"] and estimate["total"] == full["total"]
    assert estimate["percentiles"]["p50"] == full["percentiles"]["p50"] == 200
    assert sum(estimate["histogram"]["counts"]) == 7
