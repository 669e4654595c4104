"""Merge kernels on hand-made tensors, config resolution, errors, vocab alignment, writer, modes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from branchmerge.cli import app
from branchmerge.errors import UserError
from branchmerge.merge.config import evaluate, layer_t, parse_config
from branchmerge.merge.engine import run_merge
from branchmerge.merge.methods import METHODS, Context, fusion_threshold
from branchmerge.merge.options import Options
from branchmerge.merge.safetensors_io import SafetensorsModel, ShardWriter
from tests.merge_parity import llama_config, load_dir, related_models, write_model


def _kernel(name: str, ts: list[torch.Tensor], base: int | None, shared: dict, per: list[dict], **ctx) -> torch.Tensor:
    method = METHODS[name]
    full_shared = dict(method.shared) | shared
    return method.kernel(ts, base, full_shared, per, Context(**ctx))


def test_fusion_threshold_known_value() -> None:
    # floor quantiles of arange(12): indices 2, 5, 8 -> 5 + 1.5 * (8 - 2) = 14
    assert fusion_threshold(torch.arange(12.0), 1.5, None).item() == 14.0
    assert fusion_threshold(torch.arange(12.0), 3.0, None).item() == 23.0


def test_fusion_takes_right_where_important_and_collapses_on_ties() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g)
    b = a + 0.01 * torch.randn(16, 32, generator=g)
    b[1, 3] += 5.0  # one big change: far above the fence
    out = _kernel("arcee_fusion", [a, b], 0, {}, [{}, {}])
    right = a + (b - a)  # what "take the right model" computes
    assert out[1, 3] == right[1, 3]
    from_b, from_a = out == right, out == a
    assert (from_a | from_b).all() and from_a.sum() > from_b.sum() > 0
    # identical rows everywhere -> importance all 0 -> fence 0 -> ">=" takes every element of B
    flat = a.clone()
    flat[2, :] += 0.5  # a uniform shift leaves the row's softmax unchanged: KL 0 everywhere
    same = _kernel("arcee_fusion", [a, flat], 0, {}, [{}, {}])
    assert torch.equal(same, a + (flat - a))


def test_fusion_iqr_factor_and_paper_variant() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, generator=g)
    b = a + 0.1 * torch.randn(64, 64, generator=g)
    fractions = []
    for factor in (0.5, 1.5, 3.0):
        ctx = Context()
        METHODS["arcee_fusion"].kernel([a, b], 0, {"iqr_factor": factor, "variant": "code"}, [{}, {}], ctx)
        fractions.append(ctx.stats["fraction_from_right"])
    assert fractions[0] > fractions[1] > fractions[2] > 0
    ctx = Context()
    out = METHODS["arcee_fusion"].kernel([a, b], 0, {"iqr_factor": 1.5, "variant": "paper"}, [{}, {}], ctx)
    taken = out != a
    # the paper's signed score D * (left - right) only selects elements where left > right
    assert taken.any() and (a[taken] > b[taken]).all()


def test_slerp_linear_fallback_and_angle() -> None:
    v0 = torch.tensor([1.0, 2.0, 3.0])
    ctx = Context()
    out = _kernel("slerp", [v0, 2 * v0], 0, {"t": 0.25}, [{}, {}])
    assert torch.allclose(out, 0.75 * v0 + 0.25 * 2 * v0)
    METHODS["slerp"].kernel([v0, 2 * v0], 0, {"t": 0.25}, [{}, {}], ctx)
    assert ctx.stats["linear_fallback"] is True
    out = _kernel("slerp", [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])], 0, {"t": 0.5}, [{}, {}])
    assert torch.allclose(out, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))


def test_ties_sign_election_by_hand() -> None:
    base = torch.zeros(3)
    a = torch.tensor([1.0, -2.0, 3.0])
    b = torch.tensor([-3.0, 1.0, 1.0])
    per = [{}, {"weight": 1.0, "density": 1.0}, {"weight": 1.0, "density": 1.0}]
    out = _kernel("ties", [base, a, b], 0, {}, per)
    # summed deltas [-2, -1, 4] elect signs (-, -, +); disagreeing entries drop out of the mean
    assert torch.equal(out, torch.tensor([-3.0, -2.0, 2.0]))
    # density 0.5 keeps the top |delta| per model: a keeps 3 (k=1), b keeps -3
    per = [{}, {"weight": 1.0, "density": 0.5}, {"weight": 1.0, "density": 0.5}]
    assert torch.equal(_kernel("ties", [base, a, b], 0, {}, per), torch.tensor([-3.0, 0.0, 3.0]))


def test_linear_and_task_arithmetic() -> None:
    x, y = torch.ones(2, 2), 3 * torch.ones(2, 2)
    out = _kernel("linear", [x, y], None, {}, [{"weight": 1.0}, {"weight": 3.0}])
    assert torch.equal(out, 2.5 * torch.ones(2, 2))
    out = _kernel("task_arithmetic", [x, y], 0, {}, [{}, {"weight": 0.5}])
    assert torch.equal(out, 2 * torch.ones(2, 2))


def test_fast_ties_differs_only_at_the_cut() -> None:
    g = torch.Generator().manual_seed(1)
    base = torch.zeros(4096)
    deltas = [(torch.randint(-20, 21, (4096,), generator=g) / 64).bfloat16() for _ in range(2)]  # many ties
    per = [{}] + [{"weight": 1.0, "density": 0.3}] * 2
    ts = [base.bfloat16(), *deltas]
    compat = _kernel("ties", ts, 0, {}, per, mode="compat")
    fast = _kernel("ties", ts, 0, {}, per, mode="fast")
    for d in deltas:  # the stated bound: differences only where |delta| sits at some model's cut value
        w = d.abs().float()
        assert ((w >= torch.kthvalue(w, 4096 - int(0.3 * 4096) + 1).values).sum()) >= int(0.3 * 4096)
    cut = max(torch.kthvalue(d.abs().float(), 4096 - int(0.3 * 4096) + 1).values for d in deltas)
    assert (compat.float() - fast.float()).abs().max() <= cut + 1e-6
    nz_c, nz_f = (compat != 0).sum(), (fast != 0).sum()
    assert abs(int(nz_c) - int(nz_f)) < 4096 * 0.3


def test_gradients_filters_and_layer_position() -> None:
    assert layer_t("model.layers.3.mlp.up_proj.weight", 4) == 1.0
    assert layer_t("model.embed_tokens.weight", 4) == 0.0
    assert evaluate([0.0, 1.0], "x", 0.25, float, "w") == 0.25
    assert evaluate([0.0, 0.5, 1.0], "x", 0.75, float, "w") == 0.75
    setting = [{"filter": "mlp", "value": 0.5}, {"value": 0.1}]
    assert evaluate(setting, "model.layers.0.mlp.up_proj.weight", 0, float, "w") == 0.5
    assert evaluate(setting, "model.layers.0.self_attn.q_proj.weight", 0, float, "w") == 0.1


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return related_models(tmp_path_factory.mktemp("units"), hidden=256, inter=256, layers=2, vocab=4100)


def _cfg(method: str, models: list[Path], **extra) -> dict:
    base, ft0, ft1 = (str(p) for p in models)
    raw = {"merge_method": method, "base_model": base, "models": [{"model": base}, {"model": ft0, "parameters": {"weight": 0.6}}]}
    if method not in ("arcee_fusion", "slerp"):
        raw["models"].append({"model": ft1, "parameters": {"weight": 0.4}})
    return raw | extra


@pytest.mark.parametrize("method", ["dare_ties", "arcee_fusion"])
def test_compat_random_order_does_not_depend_on_workers(models: list[Path], tmp_path: Path, method: str) -> None:
    # float32 work for arcee_fusion: its sampled quartiles then move with the seed
    extra = {"parameters": {"density": 0.5}} if method == "dare_ties" else {"dtype": "float32"}
    raw = _cfg(method, models, **extra)
    outs = []
    for workers in (1, 3):
        run_merge(parse_config(raw), tmp_path / f"w{workers}", Options(seed=7, workers=workers))
        outs.append(load_dir(tmp_path / f"w{workers}"))
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
    run_merge(parse_config(raw), tmp_path / "s8", Options(seed=8))
    assert any(not torch.equal(outs[0][k], v) for k, v in load_dir(tmp_path / "s8").items())


def test_fast_mode_is_reproducible_and_states_deviation(models: list[Path], tmp_path: Path) -> None:
    raw = _cfg("dare_linear", models, parameters={"density": 0.5})
    a = run_merge(parse_config(raw), tmp_path / "a", Options(mode="fast", seed=3, workers=1))
    run_merge(parse_config(raw), tmp_path / "b", Options(mode="fast", seed=3, workers=3))
    da, db = load_dir(tmp_path / "a"), load_dir(tmp_path / "b")
    assert all(torch.equal(da[k], db[k]) for k in da)
    assert "random stream" in a["fast_mode_deviation"]
    raw = _cfg("linear", models)
    raw["models"][0]["parameters"] = {"weight": 0.1}
    run_merge(parse_config(raw), tmp_path / "lf", Options(mode="fast"))
    run_merge(parse_config(raw), tmp_path / "lc", Options(mode="compat"))
    lf, lc = load_dir(tmp_path / "lf"), load_dir(tmp_path / "lc")
    assert all(torch.equal(lf[k], lc[k]) for k in lf)


def test_output_dir_contents_and_stats(models: list[Path], tmp_path: Path) -> None:
    raw = _cfg("arcee_fusion", models, dtype="bfloat16", out_dtype="float32")
    stats = run_merge(parse_config(raw), tmp_path / "out", Options(seed=0))
    out = tmp_path / "out"
    assert {t.dtype for t in load_dir(out).values()} == {torch.float32}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    saved = json.loads((out / "stats.json").read_text())
    assert saved["kind"] == "merge" and saved["mode"] == "compat" and saved["method"] == "arcee_fusion"
    assert saved["peak_memory"]["rss_anon_peak_bytes"] > 0
    assert all(len(i["sha256"]) == 64 for i in saved["inputs"])
    assert 0 < saved["fraction_from_right_overall"] < 1
    assert stats["tensors"] == len(saved["fraction_from_right"])
    card = (out / "README.md").read_text()
    assert "arcee_fusion" in card and saved["inputs"][0]["sha256"][:16] in card
    assert not list(tmp_path.glob(".out.tmp*"))
    # the same inputs again: their digests come from the sha256 cache, unchanged
    run_merge(parse_config(raw), tmp_path / "again", Options(seed=0))
    again = json.loads((tmp_path / "again" / "stats.json").read_text())
    assert again["input_files_hashed"] == 0 and saved["input_files_hashed"] >= 0
    assert [i["sha256"] for i in again["inputs"]] == [i["sha256"] for i in saved["inputs"]]


def test_vocab_alignment_with_tokenizer_source(tmp_path: Path) -> None:
    vocab_a = {f"t{i}": i for i in range(6)}
    vocab_b = {f"t{i}": i for i in range(8)} | {"t0": 7, "t7": 0}  # bigger, two ids swapped
    cfg = llama_config(4, 8, 1, 1, 6)
    dirs = []
    for name, vocab, rows in (("a", vocab_a, 6), ("b", vocab_b, 8)):
        tensors = {
            "model.embed_tokens.weight": torch.arange(rows, dtype=torch.float32)[:, None].repeat(1, 4) + (100 if name == "b" else 0),
            "model.norm.weight": torch.ones(4),
        }
        d = write_model(tmp_path / name, tensors, cfg | {"vocab_size": rows})
        (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": []}))
        dirs.append(str(d))
    raw = {"merge_method": "linear", "models": [{"model": dirs[0], "parameters": {"weight": 1.0}}, {"model": dirs[1], "parameters": {"weight": 1.0}}], "base_model": dirs[0]}
    with pytest.raises(UserError, match=r"shape mismatch in tensor model.embed_tokens.weight.*tokenizer_source"):
        run_merge(parse_config(raw), tmp_path / "x", Options())
    run_merge(parse_config(raw | {"tokenizer_source": "base"}), tmp_path / "out", Options())
    emb = load_dir(tmp_path / "out")["model.embed_tokens.weight"]
    assert emb.shape == (6, 4)
    # row for t0: a's row 0 and b's row 7 (t0 moved to id 7 in b) -> mean(0, 107)
    assert emb[0, 0].item() == pytest.approx((0 + 107) / 2)
    assert emb[3, 0].item() == pytest.approx((3 + 103) / 2)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 6
    assert (tmp_path / "out" / "tokenizer.json").read_text() == (tmp_path / "a" / "tokenizer.json").read_text()


def _two_models(tmp_path: Path, change) -> list[str]:
    cfg = llama_config(4, 8, 1, 1, 6)
    t = {"model.embed_tokens.weight": torch.zeros(6, 4), "model.norm.weight": torch.ones(4)}
    a = write_model(tmp_path / "a", t, cfg)
    t2, cfg2 = change(dict(t), dict(cfg))
    b = write_model(tmp_path / "b", t2, cfg2)
    return [str(a), str(b)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, c: (t | {"model.norm.weight": torch.ones(5)}, c), r"shape mismatch in tensor model.norm.weight"),
        (lambda t, c: ({k: v for k, v in t.items() if k != "model.norm.weight"}, c), r"tensor model.norm.weight is in .* but missing from"),
        (lambda t, c: (t | {"model.embed_tokens.weight": torch.zeros(7, 4)}, c), r"embed_tokens.*vocabulary mismatch"),
        (lambda t, c: (t, c | {"architectures": ["Qwen2ForCausalLM"]}), r"architecture mismatch"),
        (lambda t, c: (t | {"extra.weight": torch.ones(2)}, c), r"tensor extra.weight is in .* but not in"),
    ],
)
def test_input_errors_name_the_problem(tmp_path: Path, change, message: str) -> None:
    a, b = _two_models(tmp_path, change)
    raw = {"merge_method": "arcee_fusion", "base_model": a, "models": [{"model": a}, {"model": b}]}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["merge", str(cfg_path), str(tmp_path / "out")])
    assert res.exit_code != 0
    assert isinstance(res.exception, UserError) and res.exception.exit_code == 2
    import re

    assert re.search(message, str(res.exception)), str(res.exception)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("merge_method: [unclosed", "not valid YAML"),
        ("merge_method: nope\nmodels: [{model: .}]", "unknown merge_method 'nope'"),
        ("models: [{model: .}]", "'merge_method' is missing"),
        ("merge_method: linear\nmodels: [{model: /does/not/exist}]", "not a local directory"),
        ("merge_method: slerp\nmodels: [{model: A}, {model: B}]\nbase_model: A", "missing required parameter 't'"),
        ("merge_method: ties\nmodels: [{model: A}]", "needs a base_model"),
        ("merge_method: linear\nslices: []", "not supported"),
        ("merge_method: linear\nmodels: [{model: A}]\ndtype: int3", "unknown dtype"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, message: str) -> None:
    _two_models(tmp_path, lambda t, c: (t, c))
    (tmp_path / "A").symlink_to(tmp_path / "a")
    (tmp_path / "B").symlink_to(tmp_path / "b")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(text)
    res = CliRunner().invoke(app, ["merge", str(cfg_path), str(tmp_path / "out")])
    assert isinstance(res.exception, UserError), res.output
    assert message in str(res.exception)


def test_shorthand_cli(models: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "mid"
    res = CliRunner().invoke(
        app,
        ["merge", "--method", "arcee_fusion", "--base", str(models[0]), "--model", str(models[1]), "--out", str(out), "--dtype", "bfloat16", "--shard-size", "3M", "--workers", "3"],
    )
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("model-*.safetensors"))) > 1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["base_model"] == str(models[0]) and stats["threads"] == 3


def test_shard_writer_round_trip(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    tensors = {f"t{i}": torch.randn(10, i + 1).to(torch.bfloat16) for i in range(5)} | {"ids": torch.arange(7)}
    plan = [(k, v.dtype, tuple(v.shape)) for k, v in sorted(tensors.items())]
    w = ShardWriter(tmp_path, plan, shard_size=100)
    for k, v in tensors.items():
        half = v.numel() // 2 * v.element_size()
        w.write(k, v.reshape(-1)[: v.numel() // 2])  # written in two pieces at byte offsets
        w.write(k, v.reshape(-1)[v.numel() // 2 :], byte_offset=half)
    names = w.close(tmp_path)
    assert len(names) > 1
    loaded = {}
    for n in names:
        loaded |= load_file(str(tmp_path / n))
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    model = SafetensorsModel(tmp_path)
    assert torch.equal(model.get("t3"), tensors["t3"])
    with pytest.raises(RuntimeError, match="past the end"):
        ShardWriter(tmp_path / ".", plan, 10**9).write("ids", torch.arange(8))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_order_statistics_match_sort(dtype: torch.dtype) -> None:
    from branchmerge.merge.selection import order_statistics

    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 12, 1001, 50_000):
        x = (torch.randn(n, generator=g) * 1e-3).to(dtype)
        x[::5] = 0  # many ties
        pos = (torch.tensor([0.25, 0.5, 0.75]) * (n - 1)).long()
        expected = torch.sort(x).values[pos]
        got = order_statistics(x, pos)
        assert got.dtype == dtype and torch.equal(got, expected)
    x = torch.tensor([1.0, float("nan"), -2.0, 3.0], dtype=dtype)
    assert torch.equal(order_statistics(x, torch.tensor([0, 2])), torch.tensor([-2.0, 3.0], dtype=dtype))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "turbo"], "unknown mode 'turbo'"),
        (["--shard-size", "lots"], "--shard-size 'lots'"),
        (["--workers", "0"], "must be positive"),
    ],
)
def test_bad_options(models: list[Path], tmp_path: Path, args: list[str], message: str) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg("linear", models)))
    res = CliRunner().invoke(app, ["merge", str(cfg_path), str(tmp_path / "out"), *args])
    assert isinstance(res.exception, UserError) and message in str(res.exception)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_device_without_cuda_is_a_user_error(models: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="CUDA is not available"):
        run_merge(parse_config(_cfg("linear", models)), tmp_path / "out", Options(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_within_rounding(models: list[Path], tmp_path: Path) -> None:
    raw = _cfg("arcee_fusion", models, dtype="float32", out_dtype="float32")
    run_merge(parse_config(raw), tmp_path / "cpu", Options(device="cpu"))
    run_merge(parse_config(raw), tmp_path / "gpu", Options(device="cuda"))
    cpu, gpu = load_dir(tmp_path / "cpu"), load_dir(tmp_path / "gpu")
    for name, t in cpu.items():  # masks may flip at the fence; each element is still base or right
        agree = (t == gpu[name]).float().mean().item()
        assert agree > 0.99, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("rows", [1, 2, 3, 5])
def test_sum_rows_is_torch_sum_bit_for_bit(dtype: torch.dtype, rows: int) -> None:
    from branchmerge.merge.methods import sum_rows

    g = torch.Generator().manual_seed(rows)
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"), 1e-40, -3e38, 3e38, 65504.0])
    pick = special[torch.randint(0, len(special), (rows, 200_000), generator=g)]
    x = torch.where(torch.rand(rows, 200_000, generator=g) < 0.5, pick * torch.randn(rows, 200_000, generator=g), pick)
    x = x.to(dtype)
    x[:, :500] = -0.0  # all-negative-zero columns: torch's sum gives +0
    bits = {2: torch.int16, 4: torch.int32}[x.element_size()]
    assert torch.equal(sum_rows(x).view(bits), x.sum(dim=0).view(bits))
