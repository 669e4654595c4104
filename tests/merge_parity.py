"""Helpers for the merge tests: related tiny checkpoints, and mergekit 0.1.5 as an oracle.

mergekit is LGPL and heavy, so it never enters our environment: ``mergekit_python()`` creates
(once, then cached) a separate virtual environment with ``torch==2.13.0`` installed first (so pip
never pulls a CUDA build) and then ``mergekit==0.1.5``. Its location is
``$BRANCHMERGE_PARITY_VENV`` or ``~/.cache/branchmerge-parity/mergekit-0.1.5``. An interpreter
that already has mergekit 0.1.5 can be named instead with ``$BRANCHMERGE_MERGEKIT_PYTHON``
(nothing is installed then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import save_file

MERGEKIT = "mergekit==0.1.5"
TORCH = "torch==2.13.0"


def parity_venv() -> Path:
    default = Path.home() / ".cache" / "branchmerge-parity" / "mergekit-0.1.5"
    return Path(os.environ.get("BRANCHMERGE_PARITY_VENV", default))


MERGEKIT_PYTHON_ENV = "BRANCHMERGE_MERGEKIT_PYTHON"


def check_mergekit_python(py: Path) -> str:
    """'' if ``py`` runs mergekit 0.1.5, else why not."""
    if not py.exists():
        return f"{py} does not exist"
    probe = "import importlib.metadata as m, mergekit.merge; print(m.version('mergekit'))"
    try:
        res = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        return f"{py} cannot run: {exc}"
    if res.returncode != 0:
        return f"{py} cannot import mergekit: {res.stderr.strip().splitlines()[-1:] or ['?']}"
    version = res.stdout.strip()
    return "" if version == MERGEKIT.split("==")[1] else f"{py} has mergekit {version}, not {MERGEKIT}"


def mergekit_python(install: bool = True) -> tuple[Path | None, str]:
    """Python with mergekit 0.1.5, or (None, why not).

    ``$BRANCHMERGE_MERGEKIT_PYTHON`` if set (checked, never installed into); else the parity venv,
    installed on first use when ``install``.
    """
    named = os.environ.get(MERGEKIT_PYTHON_ENV)
    if named:
        why = check_mergekit_python(Path(named))
        return (None, f"${MERGEKIT_PYTHON_ENV}: {why}") if why else (Path(named), "")
    venv = parity_venv()
    py = venv / "bin" / "python"
    marker = venv / ".branchmerge-ok"
    if marker.exists() and py.exists():
        return py, ""
    if not install:
        return None, f"no mergekit interpreter: set ${MERGEKIT_PYTHON_ENV} or create the parity venv {venv}"
    log = venv.parent / "install.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "-q", TORCH],  # first, so mergekit's torch>=2.0 is satisfied
        [str(py), "-m", "pip", "install", "-q", MERGEKIT],
        [str(py), "-c", "import mergekit.merge, torch; assert torch.__version__.startswith('2.13.0')"],
    ]
    with open(log, "w") as fh:
        for cmd in steps:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=1800).returncode != 0:
                return None, f"could not install {MERGEKIT} into {venv}: `{' '.join(cmd)}` failed (see {log})"
    marker.write_text("ok\n")
    return py, ""


def mergekit_yaml(config: Path, out: Path, seed: int, extra: tuple[str, ...] = ()) -> None:
    """Run the ``mergekit-yaml`` CLI of the parity venv."""
    py, why = mergekit_python()
    assert py is not None, why
    cmd = [str(py), "-m", "mergekit.scripts.run_yaml", str(config), str(out), "--random-seed", str(seed), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"mergekit-yaml failed:\n{res.stderr[-3000:]}"


_DRIVER = textwrap.dedent(
    """
    import json, sys, yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions
    for job in json.loads(sys.argv[1]):
        cfg = MergeConfiguration.model_validate(yaml.safe_load(open(job["config"])))
        run_merge(cfg, job["out"], MergeOptions(random_seed=job["seed"], quiet=True, copy_tokenizer=False))
    """
)


def mergekit_batch(jobs: list[tuple[Path, Path, int]]) -> None:
    """Run several merges in one mergekit process (saves the import time per merge)."""
    py, why = mergekit_python()
    assert py is not None, why
    payload = json.dumps([{"config": str(c), "out": str(o), "seed": s} for c, o, s in jobs])
    res = subprocess.run([str(py), "-c", _DRIVER, payload], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"mergekit failed:\n{res.stderr[-3000:]}"


def llama_config(hidden: int, inter: int, layers: int, heads: int, vocab: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "vocab_size": vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "dtype": "bfloat16",
    }


def llama_shapes(hidden: int, inter: int, layers: int, vocab: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab, hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (hidden, hidden),
            p + "self_attn.k_proj.weight": (hidden, hidden),
            p + "self_attn.v_proj.weight": (hidden, hidden),
            p + "self_attn.o_proj.weight": (hidden, hidden),
            p + "mlp.gate_proj.weight": (inter, hidden),
            p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
        }
    return shapes


def write_model(out: Path, tensors: dict[str, torch.Tensor], config: dict, shard_bytes: int | None = None) -> Path:
    """Save ``tensors`` as a HF-style directory (optionally sharded) with ``config``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    if shard_bytes is None:
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        return out
    shards: list[dict[str, torch.Tensor]] = [{}]
    used = 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and used + nbytes > shard_bytes:
            shards.append({})
            used = 0
        shards[-1][name] = tensors[name]
        used += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map |= {k: fname for k in shard}
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


def related_models(
    root: Path,
    n_finetunes: int = 2,
    dtype: torch.dtype = torch.bfloat16,
    hidden: int = 256,
    inter: int = 512,
    layers: int = 2,
    vocab: int = 4100,
    seed: int = 0,
    sparse_rows: bool = True,
) -> list[Path]:
    """A base and ``n_finetunes`` fine-tunes = base + small noise (some rows left untouched).

    The embedding (vocab x hidden) has more than 1M elements, so arcee_fusion's sampled quantile
    path and its random draws are exercised.
    """
    g = torch.Generator().manual_seed(seed)
    shapes = llama_shapes(hidden, inter, layers, vocab)
    base = {}
    for name, shape in shapes.items():
        t = torch.randn(shape, generator=g) * 0.02 if len(shape) == 2 else 1 + 0.1 * torch.randn(shape, generator=g)
        base[name] = t.to(dtype)
    cfg = llama_config(hidden, inter, layers, 8, vocab)
    cfg["dtype"] = str(dtype).removeprefix("torch.")
    paths = [write_model(root / "base", base, cfg)]
    for k in range(n_finetunes):
        ft = {}
        for name, t in base.items():
            noise = torch.randn(t.shape, generator=g) * 0.004
            if sparse_rows and t.dim() == 2:
                noise[torch.rand(t.shape[0], generator=g) < 0.3] = 0  # untouched rows: threshold ties
            ft[name] = (t.float() + noise).to(dtype)
        paths.append(write_model(root / f"ft{k}", ft, cfg, shard_bytes=3_000_000 if k == 0 else None))
    return paths


def load_dir(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        out |= load_file(str(f))
    return out
