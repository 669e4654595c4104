"""The training card: a Hugging Face model card (YAML front matter + markdown) from ``stats.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from branchmerge.cards import model_card
from branchmerge.contracts import TrainingStats

# Settings worth a line on the card; the full set is in stats.json.
CARD_SETTINGS = (
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "global_batch_size",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "overlong",
    "packing",
    "packing_strategy",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "max_grad_norm",
    "bf16",
    "activation_checkpointing",
    "use_liger_kernel",
    "deepspeed",
    "seed",
)


def training_card(stats: TrainingStats) -> str:
    examples, hw = stats.examples, stats.hardware
    meta = {
        "base_model": stats.base_model,
        "datasets": [source] if (source := _hub_dataset(stats)) else None,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["branchmerge", "sft", "trl", "reasoning", stats.domain],
    }
    lines = [
        f"# {stats.name}: {stats.domain} branch",
        "",
        f"Full-parameter SFT of `{stats.base_model}` on {stats.domain} reasoning traces with TRL's "
        "`SFTTrainer` (branchmerge train). Loss is on the assistant turn only; the training text "
        "matches the prompt the model sees at inference, so any `<think>` pre-filled by the chat "
        "template is not repeated.",
        "",
        "## Data",
        "",
        f"- Source: `{stats.data['path']}`",
        f"- Rows: {examples['rows']}; trained on {examples['examples']} examples "
        f"({examples['tokens']:,} tokens, {examples['target_tokens']:,} with loss; "
        f"longest {examples['max_tokens']}, mean {examples['mean_tokens']})",
        f"- Over-long (> {stats.settings['max_length']} tokens, policy `{stats.settings['overlong']}`): "
        f"{examples['dropped_overlong']} dropped, {examples['truncated']} truncated",
        f"- Dropped without usable messages: {examples['dropped_invalid']}; without the template's "
        f"pre-filled prefix: {examples['dropped_missing_prefill']}",
    ]
    curation = stats.data.get("curation")
    if curation:
        lines.append("- Curation card counts: " + _inline(curation))
    lines += [
        "",
        "## Hyper-parameters",
        "",
        f"Hyper-parameters `{stats.hparams}`:",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    settings = stats.settings
    lines += [f"| {k} | {_value(settings[k])} |" for k in CARD_SETTINGS if settings.get(k) is not None]
    lines += ["", "On this machine: " + _inline(stats.resolved) + "."]
    lines += [
        "",
        "## Run",
        "",
        "| | |",
        "|---|---|",
        f"| steps | {stats.steps} |",
        f"| epochs | {stats.epochs} |",
        f"| tokens seen | {stats.tokens_seen:,} |",
        f"| first / final logged loss | {_value(stats.first_loss)} / {_value(stats.final_loss)} |",
        f"| wall time | {_duration(stats.wall_time_s)} ({_duration(stats.train_time_s)} in the training loop) |",
        f"| hardware | {hw['processes']} process(es), {hw['accelerator']}, {hw['cpu_count']} CPU cores |",
        f"| software | torch {hw['torch']}, transformers {hw['transformers']}, trl {hw['trl']} |",
    ]
    if stats.resumed_from_step:
        lines.append(f"| resumed from step | {stats.resumed_from_step} (wall time is this session) |")
    lines += [
        "",
        "Per-step metrics: `metrics.jsonl`; full settings and counts: `stats.json`.",
        "",
        "## Reproduce",
        "",
        "```",
        stats.command,
        "```",
        "",
    ]
    return model_card(meta, "\n".join(lines))


def _hub_dataset(stats: TrainingStats) -> str | None:
    """The Hub dataset the branch was trained on, when the data came from one (for the card's ``datasets``)."""
    source = (stats.data.get("curation") or {}).get("source") or ""
    return source if source.count("/") == 1 and not Path(source).exists() else None


def _inline(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + _inline(value) + "}"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
