"""Training data: label masks at token level, the <think> pre-fill, recipes and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from branchmerge.errors import UserError
from branchmerge.train.config import TrainConfig, parse_overrides, sft_kwargs
from branchmerge.train.data import IGNORE, ChatFormat, check_messages, find_source, load_rows, prepare
from tests.train_helpers import corpus, toy_rows, write_curation, write_jsonl

REASONING = "<think>\n3 + 4 = 7\n</think>\n\nThe answer is 7."
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 3 + 4?"},
    {"role": "assistant", "content": REASONING},
]

# An R1-Distill-like template: no {% generation %} markers, reasoning stripped from rendered
# assistant turns, and "<think>\n" pre-filled in the generation prompt.
R1_LIKE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- set c = m['content'] -%}{%- if '</think>' in c -%}{%- set c = c.split('</think>')[-1] -%}{%- endif -%}"
    "{{ '<|im_start|>assistant' + c + '<|im_end|>' }}"
    "{%- else -%}{{ '<|im_start|>' + m['content'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant<think>\\n' }}{%- endif -%}"
)
# ChatML without any pre-fill: the model itself must write "<think>\n".
PLAIN = (
    "{%- for m in messages -%}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from branchmerge.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("train") / "base", corpus(toy_rows(60)) + [REASONING] * 5)


@pytest.fixture()
def tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def trained(encoded):
    return [i for i, label in enumerate(encoded["labels"]) if label != IGNORE]


@pytest.mark.parametrize("messages", [CONVERSATION, CONVERSATION[1:]], ids=["system", "no-system"])
def test_mask_is_exactly_the_generated_assistant_tokens(tokenizer, messages):
    """Against the template's {% generation %} spans: same ids, same mask minus the pre-filled <think>\\n."""
    chat = ChatFormat.for_tokenizer(tokenizer)
    encoded = chat.encode(messages)
    reference = tokenizer.apply_chat_template(messages, return_assistant_tokens_mask=True, return_dict=True)
    n = len(encoded["input_ids"])
    assert encoded["input_ids"] == reference["input_ids"][:n]
    assert tokenizer.decode(reference["input_ids"][n:]) == "\n"  # after the stop token: never generated
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<think>\n")
    prefill_len = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    spans = [i for i, bit in enumerate(reference["assistant_masks"][:n]) if bit]
    assert tokenizer.decode([reference["input_ids"][i] for i in spans if i < prefill_len]) == "<think>\n"
    assert trained(encoded) == [i for i in spans if i >= prefill_len]
    labels = [encoded["labels"][i] for i in trained(encoded)]
    assert labels == [encoded["input_ids"][i] for i in trained(encoded)]
    assert labels[-1] == tokenizer.eos_token_id


def test_r1_template_keeps_reasoning_and_does_not_repeat_think(tokenizer):
    tokenizer.chat_template = R1_LIKE
    chat = ChatFormat.for_tokenizer(tokenizer)
    encoded = chat.encode(CONVERSATION[1:])
    text = tokenizer.decode(encoded["input_ids"])
    inference_prompt = "<|im_start|>What is 3 + 4?<|im_start|>assistant<think>\n"
    assert text == inference_prompt + "3 + 4 = 7\n</think>\n\nThe answer is 7.<|im_end|>"
    assert text.count("<think>") == 1
    first = trained(encoded)[0]
    assert tokenizer.decode(encoded["input_ids"][:first]) == inference_prompt
    assert tokenizer.decode(encoded["input_ids"][first:]) == "3 + 4 = 7\n</think>\n\nThe answer is 7.<|im_end|>"


def test_template_without_prefill_trains_the_think_tag(tokenizer):
    tokenizer.chat_template = PLAIN
    encoded = ChatFormat.for_tokenizer(tokenizer).encode(CONVERSATION[1:])
    target = tokenizer.decode([encoded["input_ids"][i] for i in trained(encoded)])
    assert target == REASONING + "<|im_end|>"


def test_multi_turn_trains_only_the_last_assistant_turn(tokenizer):
    messages = [*CONVERSATION[1:], {"role": "user", "content": "And 1 + 1?"},
                {"role": "assistant", "content": "<think>\n1 + 1 = 2\n</think>\n\nThe answer is 2."}]
    encoded = ChatFormat.for_tokenizer(tokenizer).encode(messages)
    target = tokenizer.decode([encoded["input_ids"][i] for i in trained(encoded)])
    assert target == "1 + 1 = 2\n</think>\n\nThe answer is 2.<|im_end|>"
    assert "The answer is 7." in tokenizer.decode(encoded["input_ids"])


def test_prepare_counts_drops_and_truncation(tokenizer, tmp_path):
    rows = toy_rows(6)
    rows[0]["messages"][1]["content"] = "The answer is 5."  # lacks the <think>\n the template pre-fills
    rows[1]["messages"] = rows[1]["messages"][:1]  # no assistant turn
    rows[2]["messages"][1]["content"] = REASONING * 20  # over-long
    data = load_rows(find_source(write_jsonl(tmp_path / "d.jsonl", rows)))
    chat = ChatFormat.for_tokenizer(tokenizer)
    _, counts = prepare(data, chat, max_length=60, overlong="drop")
    assert (counts["rows"], counts["examples"]) == (6, 3)
    assert counts["dropped_missing_prefill"] == counts["dropped_invalid"] == counts["dropped_overlong"] == 1
    kept, counts = prepare(data, chat, max_length=60, overlong="truncate")
    assert counts["examples"] == 4 and counts["truncated"] == 1
    assert max(len(ids) for ids in kept["input_ids"]) == 60


def test_curation_output_is_found_with_its_stats(tmp_path):
    source = find_source(write_curation(tmp_path / "cur", toy_rows(5)))
    assert [f.name for f in source.files] == ["train-00000-of-00001.parquet"]
    assert source.curation.rows == 5
    assert len(load_rows(source)) == 5


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([{"role": "user", "content": "hi"}], "at least"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}], "last message"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}], "empty"),
        ("not json", "JSON"),
    ],
)
def test_unusable_messages_are_named(messages, reason):
    checked, why = check_messages(messages)
    assert checked is None and reason in why


def test_bad_data_is_a_user_error(tmp_path, tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "x"}]), tmp_path / "t.parquet")
    with pytest.raises(UserError, match="no 'messages' column"):
        load_rows(find_source(tmp_path / "t.parquet"))
    with pytest.raises(UserError, match="no such file"):
        find_source(tmp_path / "missing")
    bad = [{"messages": [{"role": "user", "content": "q"}]}] * 3
    data = load_rows(find_source(write_jsonl(tmp_path / "bad.jsonl", bad)))
    with pytest.raises(UserError, match="no usable training example"):
        prepare(data, ChatFormat.for_tokenizer(tokenizer), max_length=64)


def test_tokenizer_without_chat_template(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        ChatFormat.for_tokenizer(tokenizer)


def test_recipes_resolve_per_domain_with_overrides():
    math = TrainConfig("math", "d", "b", "o", hparams="tinyr1").resolve().settings
    code = TrainConfig("code", "d", "b", "o", hparams="tinyr1").resolve().settings
    science = TrainConfig(
        "science", "d", "b", "o", hparams="tinyr1", overrides=parse_overrides(["learning_rate=2e-5"])
    ).resolve().settings
    assert (math["num_train_epochs"], code["num_train_epochs"], science["num_train_epochs"]) == (5, 15, 5)
    assert (math["global_batch_size"], code["global_batch_size"], science["global_batch_size"]) == (96, 96, 32)
    assert science["lr_scheduler_type"] == "cosine" and math["lr_scheduler_type"] == "constant_with_warmup"
    assert (code["packing_strategy"], science["packing_strategy"]) == ("bfd", "bfd")
    assert science["learning_rate"] == 2e-5 and math["learning_rate"] == 1e-5
    assert math["max_length"] == 16384 and math["adam_beta2"] == 0.95
    kwargs = sft_kwargs({**code, "deepspeed": None}, "o", processes=32)
    assert kwargs["gradient_accumulation_steps"] == 3
    with pytest.raises(UserError, match="not a multiple"):
        sft_kwargs({**code, "deepspeed": None}, "o", processes=5)


def test_bad_recipe_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="did you mean learning_rate"):
        TrainConfig("math", "d", "b", "o", overrides={"learning_rat": 1}).resolve()
    with pytest.raises(UserError, match="set by the training stage"):
        TrainConfig("math", "d", "b", "o", overrides={"output_dir": "x"}).resolve()
    with pytest.raises(UserError, match="unknown domain"):
        TrainConfig("poetry", "d", "b", "o").resolve()
    with pytest.raises(UserError, match="neither a built-in"):
        TrainConfig("math", "d", "b", "o", hparams=str(tmp_path / "nope.yaml")).resolve()
    custom = tmp_path / "r.yaml"
    custom.write_text(json.dumps({"defaults": {"max_length": 32}, "domains": {"code": {"num_train_epochs": 2}}}))
    settings = TrainConfig("code", "d", "b", "o", hparams=str(custom)).resolve().settings
    assert (settings["max_length"], settings["num_train_epochs"]) == (32, 2)
    assert parse_overrides(["a=1", "b=true", "c=null", "d=cosine", "e=1e-5"]) == {
        "a": 1, "b": True, "c": None, "d": "cosine", "e": 1e-5
    }
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["novalue"])


def test_missing_chat_template_file_is_caught_before_training(tiny_base, tmp_path):
    from branchmerge.train.run import load_tokenizer

    copy = shutil.copytree(tiny_base, tmp_path / "nochat")
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer, _ = load_tokenizer(str(copy))
    with pytest.raises(UserError, match="no chat template"):
        ChatFormat.for_tokenizer(tokenizer)


def test_zero3_config_and_machine_dependent_settings():
    from importlib.util import find_spec

    from branchmerge.train.config import ZERO3_CONFIG

    zero = json.loads(ZERO3_CONFIG.read_text())["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    settings = TrainConfig("code", "d", "b", "o", hparams="tinyr1").resolve().settings
    assert settings["deepspeed"] == "zero3"
    if find_spec("deepspeed") is None:
        with pytest.raises(UserError, match="'deepspeed' is not installed"):
            sft_kwargs(settings, "o", processes=32)
    else:
        assert sft_kwargs(settings, "o", processes=32)["deepspeed"] == str(ZERO3_CONFIG)
    import torch

    kwargs = sft_kwargs({**settings, "deepspeed": None}, "o", processes=1)
    assert kwargs["model_init_kwargs"]["dtype"] == "float32"  # fp32 master weights, bf16 autocast
    if not torch.cuda.is_available():
        assert kwargs["model_init_kwargs"]["attn_implementation"] == "sdpa"
        assert kwargs["use_liger_kernel"] is False


def test_all_rows_missing_the_prefill_names_it(tokenizer, tmp_path):
    rows = toy_rows(3)
    for row in rows:
        row["messages"][1]["content"] = "The answer is 5."
    data = load_rows(find_source(write_jsonl(tmp_path / "d.jsonl", rows)))
    with pytest.raises(UserError, match=r"missing_prefill x3.*pre-fills '<think>\\n'"):
        prepare(data, ChatFormat.for_tokenizer(tokenizer), max_length=64)


def test_turn_end_without_stop_token_gets_eos(tokenizer):
    tokenizer.chat_template = (
        "{%- for m in messages -%}{{ m['role'] + ': ' + m['content'] + '\\n\\n' }}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'assistant: ' }}{%- endif -%}"
    )
    encoded = ChatFormat.for_tokenizer(tokenizer).encode(CONVERSATION[1:])
    target = [encoded["input_ids"][i] for i in trained(encoded)]
    assert tokenizer.decode(target) == REASONING + "\n\n<|im_end|>"


def test_qwen_template_renders_llama_factory_chatml_and_masks_exactly_the_answer(tokenizer):
    """TinyR1's experts: 360-LLaMA-Factory --template qwen, whatever template the base model ships."""
    from branchmerge.chat import use_template

    turn_ends = use_template(tokenizer, "qwen")
    assert turn_ends == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    chat = ChatFormat.for_tokenizer(tokenizer, turn_ends)
    messages = CONVERSATION[1:]  # no system turn: the template's default system prompt is used
    encoded = chat.encode(messages)
    assert tokenizer.decode(encoded["input_ids"]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n"
        f"<|im_start|>assistant\n{REASONING}<|im_end|>")
    trained_ids = [encoded["input_ids"][i] for i in trained(encoded)]
    assert tokenizer.decode(trained_ids) == REASONING + "<|im_end|>"  # the whole answer, reasoning included
    with_system = chat.encode(CONVERSATION)
    assert tokenizer.decode(with_system["input_ids"]).startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_chatml_without_default_system_and_a_template_file(tokenizer, tmp_path):
    from branchmerge.chat import use_template

    chat = ChatFormat.for_tokenizer(tokenizer, use_template(tokenizer, "chatml"))
    assert tokenizer.decode(chat.encode(CONVERSATION[1:])["input_ids"]).startswith("<|im_start|>user\n")
    path = tmp_path / "t.jinja"
    path.write_text(PLAIN)
    assert use_template(tokenizer, str(path)) == [] and tokenizer.chat_template == PLAIN
    with pytest.raises(UserError, match="expected one of model, qwen, chatml"):
        use_template(tokenizer, "llama3")


def test_qwen_template_refused_when_the_tokenizer_cannot_encode_im_end():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from branchmerge.chat import use_template

    raw = Tokenizer(models.BPE(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["plain words only"] * 20, trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]"]))
    bare = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="[UNK]")  # no ChatML special tokens
    with pytest.raises(UserError, match="splits <|im_end|>"):
        use_template(bare, "qwen")


def test_plain_packing_keeps_examples_whole_and_shares_attention_rows():
    import datasets

    from branchmerge.train.data import pack_plain

    lengths = [7, 3, 9, 2, 5, 10, 1, 4]
    rows = {"input_ids": [[100 * i + t for t in range(n)] for i, n in enumerate(lengths)],
            "labels": [[IGNORE] + [100 * i + t for t in range(1, n)] for i, n in enumerate(lengths)]}
    packed = pack_plain(datasets.Dataset.from_dict(rows), max_length=12)
    assert all(len(ids) <= 12 for ids in packed["input_ids"])
    assert len(packed) == 4  # 41 tokens: best fit decreasing fills 4 rows of <= 12
    pieces = []
    for ids, labels in zip(packed["input_ids"], packed["labels"], strict=True):
        assert len(ids) == len(labels)
        at = 0
        while at < len(ids):  # every example sits whole and contiguous in one row
            example = ids[at] // 100
            n = lengths[example]
            assert ids[at:at + n] == rows["input_ids"][example] and labels[at:at + n] == rows["labels"][example]
            pieces.append(example)
            at += n
    assert sorted(pieces) == list(range(len(lengths)))


def test_plain_packing_setting_reaches_the_trainer_unpacked():
    settings = {**TrainConfig("math", ["x"], "b", "o", hparams="tinyr1").resolve().settings}
    assert settings["packing_strategy"] == "plain" and settings["chat_template"] == "qwen"
    kwargs = sft_kwargs({**settings, "deepspeed": None}, "out", processes=32)
    assert kwargs["packing"] is False and "packing_strategy" not in kwargs  # rows arrive packed
    assert "chat_template" not in kwargs
