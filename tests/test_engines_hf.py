"""The hf engine on a tiny random model built in the test."""

from __future__ import annotations

import json

import pytest

from branchmerge.engines import Request, SamplingParams, get_engine
from branchmerge.errors import UserError

MESSAGES = [Request(id="q1", messages=[{"role": "user", "content": "What is 12 + 30?"}]),
            Request(id="q2", messages=[{"role": "user", "content": "Which gas do plants absorb?"}])]


@pytest.fixture(scope="module")
def engine(tiny_model):
    return get_engine("hf", model=str(tiny_model), batch_size=4)


def test_n_samples_seeded_and_reproducible(engine):
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=8, seed=7)
    a = engine.generate(MESSAGES, params)
    b = engine.generate(MESSAGES, params)
    c = engine.generate(MESSAGES, SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=8, seed=8))
    assert sorted((x.request_id, x.sample_idx) for x in a) == [(q, s) for q in ("q1", "q2") for s in range(3)]
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]
    assert len({x.text for x in a}) > 1  # samples differ from each other


def test_length_finish_and_exact_token_counts(engine):
    out = engine.generate(MESSAGES[:1], SamplingParams(n=2, temperature=1.0, max_tokens=5, seed=1))
    prompt = engine.render(MESSAGES[0])
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    expected_prompt_tokens = len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    for c in out:
        assert c.finish_reason == "length"
        assert c.completion_tokens == 5
        assert c.prompt_tokens == expected_prompt_tokens


def test_stop_finish_when_eos_is_generated(tiny_model, tmp_path, engine):
    # Make the greedy first token an end-of-sequence id (models may list several EOS ids).
    import torch

    enc = engine.tokenizer(engine.render(MESSAGES[0]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        first_id = int(engine.lm(**enc).logits[0, -1].argmax())
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    for f in tiny_model.iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    gen = json.loads((model_dir / "generation_config.json").read_text())
    gen["eos_token_id"] = [gen["eos_token_id"], first_id]
    (model_dir / "generation_config.json").write_text(json.dumps(gen))
    out = get_engine("hf", model=str(model_dir)).generate(MESSAGES[:1], SamplingParams(temperature=0, max_tokens=16))
    assert out[0].finish_reason == "stop"
    assert out[0].completion_tokens == 1
    assert out[0].text == ""


def test_left_padding_batches_match_single_prompts(engine):
    params = SamplingParams(temperature=0, max_tokens=6)
    batched = {c.request_id: c.text for c in engine.generate(MESSAGES, params)}
    for request in MESSAGES:
        assert engine.generate([request], params)[0].text == batched[request.id]


def test_skip_and_on_complete(engine):
    seen = []
    out = engine.generate(MESSAGES, SamplingParams(n=2, max_tokens=3), on_complete=seen.append,
                          skip={("q1", 0), ("q2", 1)})
    assert sorted((c.request_id, c.sample_idx) for c in out) == [("q1", 1), ("q2", 0)]
    assert seen == out


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot load model"):
        get_engine("hf", model=str(tmp_path / "nope"))


def test_unknown_engine_lists_choices():
    with pytest.raises(UserError, match="valid choices: hf, openai, replay, toy, vllm"):
        get_engine("tgi", model="x")


def test_vllm_missing_names_the_extra():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"branchmerge\[vllm\]"):
            get_engine("vllm", model="x")
    else:
        pytest.skip("vllm is installed")
