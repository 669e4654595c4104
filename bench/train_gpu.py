"""Training throughput on one GPU: our ``train`` (tinyr1 recipe settings) vs plain TRL defaults.

A randomly initialised Qwen2.5-0.5B-shaped model (no download; a small BPE tokenizer trained on
the spot, the model keeps Qwen2.5's 151,936-row vocabulary so the LM head costs what it costs),
bf16, sequence length 4096, packing on, synthetic reasoning-length chats. Both sides train the
same data for the same number of steps in the same process; tokens/s counts non-padding input
tokens between the end of the warm-up steps and the last step (CUDA synchronised).

MFU = tokens/s x FLOPs per token / peak dense bf16 FLOP/s, with FLOPs per token =
6 N + 6 L d T (N parameters with the tied embedding counted once, L layers, d hidden size,
T mean document length: causal attention, each packed document attends only to itself).

    python bench/train_gpu.py                 # on a GPU machine
    python bench/train_gpu.py --tiny --steps 4   # CPU smoke test of the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN25_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
)
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=4096,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
WORDS = "the so we add then check each case because therefore wait let compute sum value answer".split()


def build_model(root: Path, shape: dict, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from branchmerge.tiny import train_tokenizer

    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(200)) for _ in range(200)]
    tokenizer = train_tokenizer(texts, vocab_size=2048)
    config = Qwen2Config(
        **shape,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = root / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_data(root: Path, tokenizer, n: int, seq: int, seed: int = 0) -> tuple[Path, list[int]]:
    """Chats shaped like curated traces (short prompt, long <think> trace), each fitting in ``seq``."""
    rng = random.Random(seed)
    path = root / "data" / "train.jsonl"
    path.parent.mkdir(parents=True)
    lengths = []
    with path.open("w") as fh:
        for i in range(n):
            target = rng.randint(seq // 8, seq - 16)
            words = target // 2
            while True:
                trace = " ".join(rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(words))
                messages = [
                    {"role": "user", "content": f"Problem {i}: " + " ".join(rng.choice(WORDS) for _ in range(30))},
                    {"role": "assistant", "content": f"<think>\n{trace}\n</think>\n\nThe answer is {i}."},
                ]
                text = tokenizer.apply_chat_template(messages, tokenize=False)
                length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                if length <= seq - 8:
                    break
                words = int(words * (seq - 16) / length)
            lengths.append(length)
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path, lengths


def meter_class():
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        """Wall time and tokens seen at the end of every optimizer step."""

        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    return Meter


def throughput(marks: list[tuple[float, int]], warmup: int) -> float:
    (t0, n0), (t1, n1) = marks[warmup - 1], marks[-1]
    return (n1 - n0) / (t1 - t0)


def run_ours(model: Path, data: Path, out: Path, steps: int, batch: int, seq: int, meter, bf16: bool) -> dict:
    from branchmerge.train.config import TrainConfig
    from branchmerge.train.run import train

    overrides = {
        "deepspeed": None,  # one GPU: plain DDP-free training, everything else as in the recipe
        "global_batch_size": None,
        "gradient_accumulation_steps": 1,
        "per_device_train_batch_size": batch,
        "max_length": seq,
        "save_strategy": "no",
        "logging_steps": 5,
        "dataset_num_proc": 8,
        "bf16": bf16,
    }
    config = TrainConfig("code", str(data), str(model), str(out), recipe="tinyr1", max_steps=steps,
                         overrides=overrides)
    stats = train(config, callbacks=[meter])
    return {"settings": {k: stats["settings"][k] for k in ("activation_checkpointing", "use_liger_kernel",
                                                          "packing_strategy", "attn_implementation")}}


def run_trl(model: Path, data: Path, out: Path, steps: int, batch: int, seq: int, meter, bf16: bool) -> dict:
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset("json", data_files=str(data), split="train")
    args = SFTConfig(
        output_dir=str(out),
        max_length=seq,
        packing=True,
        per_device_train_batch_size=batch,
        max_steps=steps,
        report_to="none",
        save_strategy="no",
        logging_steps=5,
        include_num_input_tokens_seen="non_padding",  # measurement only
        bf16=bf16,  # TRL's default (True); False only for the CPU smoke test
    )
    trainer = SFTTrainer(model=str(model), args=args, train_dataset=dataset, callbacks=[meter])
    trainer.train()
    return {"settings": {"activation_checkpointing": args.activation_checkpointing, "packing_strategy":
                         args.packing_strategy, "use_liger_kernel": args.use_liger_kernel}}


def flops_per_token(shape: dict, params: int, mean_doc: float) -> float:
    return 6 * params + 6 * shape["num_hidden_layers"] * shape["hidden_size"] * mean_doc


def peak_flops(override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override * 1e12, "given"
    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value, name
    return None, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--batch", type=int, default=4, help="packed rows per step")
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s if unknown")
    parser.add_argument("--tiny", action="store_true", help="tiny shape: a CPU check of the script")
    parser.add_argument("--variants", default="ours,trl")
    args = parser.parse_args()
    if args.tiny:
        args.seq, args.examples = min(args.seq, 512), min(args.examples, 60)
    shape = TINY if args.tiny else QWEN25_05B

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    model = build_model(root, shape)
    data, lengths = build_data(root, AutoTokenizer.from_pretrained(model), args.examples, args.seq)
    mean_doc = sum(lengths) / len(lengths)
    meta = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    params = sum(p.numel() for p in meta.parameters())
    del meta
    per_token = flops_per_token(shape, params, mean_doc)
    peak, device = peak_flops(args.peak_tflops)
    runners = {"ours": run_ours, "trl": run_trl}
    results = {}
    for name in args.variants.split(","):
        meter = meter_class()()
        extra = runners[name](model, data, root / name, args.steps, args.batch, args.seq, meter, not args.tiny)
        tps = throughput(meter.marks, args.warmup)
        results[name] = {"tokens_per_s": round(tps, 1),
                         "mfu": round(tps * per_token / peak, 4) if peak else None, **extra}
        import torch

        if torch.cuda.is_available():
            results[name]["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
    report = {
        "device": device,
        "model": "Qwen2.5-0.5B shape (random)" if not args.tiny else "tiny",
        "params": params,
        "seq": args.seq,
        "rows_per_step": args.batch,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "mean_doc_tokens": round(mean_doc, 1),
        "flops_per_token": per_token,
        "results": results,
    }
    if "ours" in results and "trl" in results:
        report["ours_over_trl"] = round(results["ours"]["tokens_per_s"] / results["trl"]["tokens_per_s"], 3)
    print(json.dumps(report, indent=2))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "train_gpu.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
