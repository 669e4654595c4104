"""One SFT branch: check inputs, tokenize, train with TRL's ``SFTTrainer``, write the outputs.

Everything that can be wrong with the inputs (base path, tokenizer without chat template, data
without usable messages, recipe keys, an output directory holding another run) is checked before
the model is loaded. The output directory is itself a Hugging Face model directory; beside the
weights it holds ``checkpoints/`` (for ``--resume``), ``metrics.jsonl`` (every trainer log line),
``trainer_state.json``, ``run_config.json``, ``stats.json`` (kind "training", written last) and
the training card ``README.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from branchmerge.atomic import temp_path, write_json, write_text
from branchmerge.chat import use_template
from branchmerge.console import log, verbosity
from branchmerge.contracts import CurationStats, TrainingStats
from branchmerge.errors import UserError
from branchmerge.network import check_hub
from branchmerge.outdir import claim
from branchmerge.train.card import training_card
from branchmerge.train.config import OWN_PACKING, TrainConfig, sft_kwargs
from branchmerge.train.data import ChatFormat, find_source, load_rows, pack_plain, prepare

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
RUN_CONFIG = "run_config.json"
STATS = "stats.json"
TOKENIZED = ".tokenized"
# Settings that may differ when a run is resumed: they change neither the data nor the optimisation.
RESUMABLE_CHANGES = frozenset(
    {"dataset_num_proc", "dataloader_num_workers", "logging_steps", "report_to", "save_total_limit", "disable_tqdm"}
)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def train(config: TrainConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run (or resume) one training branch and return its ``stats.json`` content."""
    began = time.time()
    config.resolve()
    out = Path(config.out).expanduser()
    base = check_base(config.base)
    source = find_source(",".join(config.data))
    done = _prepare_out(out, config)
    if done is not None:
        log.info("%s already holds the finished run; nothing to do", out)
        return done
    settings = config.settings
    if not Path(base).exists():
        check_hub()  # once, within seconds: offline means the Hub cache only, no retry storms
    tokenizer, stop_ids = load_tokenizer(base)
    turn_ends = use_template(tokenizer, settings["chat_template"])
    chat = ChatFormat.for_tokenizer(tokenizer, [*stop_ids, *turn_ends])
    args = _sft_config(settings, out)  # also sets up the distributed state
    with args.main_process_first(local=True, desc="tokenizing"):  # ends with a barrier of all processes
        dataset, counts = _tokenized(out / TOKENIZED, source, chat, settings)
    if args.process_index == 0:  # every process has checked --out by now: mark the run as started
        write_json(out / RUN_CONFIG, _comparable(config))
        _report_counts(counts)

    from trl import SFTTrainer

    resume_from = latest_checkpoint(out) if config.resume else None
    _trim_metrics(out / METRICS, resume_from)
    trainer = SFTTrainer(
        model=base,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[MetricsLog(out / METRICS), *callbacks],
    )
    if verbosity() < 0:  # -q: no progress bar, no metrics dict printed per log step
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    main = trainer.is_world_process_zero()
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    times = {"train": time.time() - started}
    _save_model(trainer, out, turn_ends)
    # every process leaves its process group before it may exit: gloo's threads, still running at
    # interpreter exit, abort the process (SIGABRT), and the launcher reports the run as failed
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    if not main:
        return {}
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    times["total"] = time.time() - began
    stats = _stats(config, source, counts, trainer, result, times, resume_from, base)
    write_text(out / "README.md", training_card(TrainingStats.model_validate(stats)))
    TrainingStats.model_validate(stats).write(out / STATS)
    shutil.rmtree(out / TOKENIZED, ignore_errors=True)
    return stats


def _tokenized(cache: Path, source: Any, chat: ChatFormat, settings: dict[str, Any]):
    """Tokenize once per node (other processes, and a resumed run, load the saved copy)."""
    import datasets

    key = _fingerprint(source, chat, settings)
    stamp = cache / "counts.json"
    if stamp.is_file():
        saved = json.loads(stamp.read_text("utf-8"))
        if saved.get("fingerprint") == key:
            return datasets.load_from_disk(str(cache / "data")), saved["counts"]
    dataset, counts = prepare(
        load_rows(source),
        chat,
        settings["max_length"],
        settings["overlong"],
        settings.get("dataset_num_proc"),
        where=f"--data {source.path}",
    )
    if settings.get("packing") and settings.get("packing_strategy") in OWN_PACKING:
        dataset = pack_plain(dataset, settings["max_length"])
        counts["packed_rows"] = len(dataset)
    with temp_path(cache) as tmp:
        dataset.save_to_disk(str(tmp / "data"))
        write_json(tmp / "counts.json", {"fingerprint": key, "counts": counts})
    return datasets.load_from_disk(str(cache / "data")), counts


def _fingerprint(source: Any, chat: ChatFormat, settings: dict[str, Any]) -> str:
    files = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in source.files]
    tokenizer = chat.tokenizer
    described = {
        "files": files,
        "template": tokenizer.chat_template,
        "tokenizer": [tokenizer.name_or_path, len(tokenizer), tokenizer.eos_token_id],
        "stop_ids": sorted(chat.stop_ids),
        "max_length": settings["max_length"],
        "overlong": settings["overlong"],
        "packing": [settings.get("packing"), settings.get("packing_strategy")],
    }
    return hashlib.sha256(json.dumps(described, default=str).encode()).hexdigest()


def check_base(base: str) -> str:
    """A local model directory, or something shaped like a Hub id (``org/name``)."""
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"--base {base}: not a model directory (no config.json)")
        return str(path)
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", base) and not base.startswith(".")
    if not hub_like:
        raise UserError(f"--base {base}: no such directory (give a local model directory or a Hub id)")
    return base


def load_tokenizer(base: str) -> tuple[Any, list[int]]:
    """The base model's tokenizer and the ids that end a generation (tokenizer + generation config)."""
    from transformers import AutoTokenizer, GenerationConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise UserError(f"--base {base}: cannot load its tokenizer: {exc}") from None
    try:
        eos = GenerationConfig.from_pretrained(base).eos_token_id
    except OSError:
        eos = None
    stop_ids = [eos] if isinstance(eos, int) else list(eos or [])
    return tokenizer, stop_ids


def latest_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    found = [
        (int(m.group(1)), p)
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def _prepare_out(out: Path, config: TrainConfig) -> dict[str, Any] | None:
    """Claim ``out``; return the stats of a finished run when resuming it.

    A run that stopped before its first checkpoint has nothing to resume: it starts afresh, with
    whatever settings are given now, with or without --resume."""
    stats_file, run_file = out / STATS, out / RUN_CONFIG
    # every process of a launch checks --out; only the first changes it (two clearing one folder for
    # --overwrite would trip over each other's deletions)
    resumed = claim(out, "training", resume=config.resume, overwrite=config.overwrite,
                    has_results=lambda p: (p / STATS).is_file() or latest_checkpoint(p) is not None,
                    check_only=int(os.environ.get("RANK", "0")) != 0)
    if not resumed:
        return None
    if stats_file.is_file():
        return TrainingStats.read(stats_file).dump()
    if run_file.is_file() and latest_checkpoint(out) is not None:
        previous = json.loads(run_file.read_text("utf-8"))
        current = _comparable(config)
        changed = sorted(
            k
            for k in {**previous["settings"], **current["settings"]}
            if k not in RESUMABLE_CHANGES and previous["settings"].get(k) != current["settings"].get(k)
        )
        changed += [k for k in ("domain", "data", "base") if previous.get(k) != current.get(k)]
        if changed:
            raise UserError(
                f"--resume: the run in {out} was started with different settings ({', '.join(changed)}); "
                "resume with the same arguments, --overwrite to start again, or choose another --out"
            )
    return None


def _comparable(config: TrainConfig) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "domain": config.domain,
                "data": ",".join(str(Path(p).expanduser().resolve()) for p in config.data),
                "base": str(Path(config.base).expanduser().resolve()) if Path(config.base).expanduser().exists()
                else config.base,
                "hparams": config.hparams,
                "settings": config.settings,
            },
            default=str,
        )
    )


def _sft_config(settings: dict[str, Any], out: Path):
    from trl import SFTConfig

    kwargs = sft_kwargs(settings, str(out / CHECKPOINTS))
    try:
        return SFTConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid training settings: {exc}") from None


def _report_counts(counts: dict[str, Any]) -> None:
    dropped = {k: v for k, v in counts.items() if k.startswith("dropped_") and v}
    log.info(
        "training on %d of %d rows (%d tokens, %d with loss)%s",
        counts["examples"],
        counts["rows"],
        counts["tokens"],
        counts["target_tokens"],
        "; " + ", ".join(f"{k} {v}" for k, v in dropped.items()) if dropped else "",
    )
    if counts["dropped_missing_prefill"]:
        log.warning(
            "%d rows dropped: the chat template pre-fills the start of the assistant turn (e.g. "
            "'<think>\\n') but their assistant content does not begin with it",
            counts["dropped_missing_prefill"],
        )
    if counts["dropped_invalid"]:
        log.warning("%d rows without usable messages: %s", counts["dropped_invalid"], counts["invalid_reasons"])


def _trim_metrics(path: Path, checkpoint: Path | None) -> None:
    """Drop log lines written after the checkpoint a resumed run restarts from."""
    if not path.is_file() or int(os.environ.get("RANK", "0")) != 0:
        return
    if checkpoint is None:
        path.unlink(missing_ok=True)
        return
    step = int(_CHECKPOINT.match(checkpoint.name).group(1))
    kept = []
    for line in path.read_text("utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):  # a line torn by the crash
            continue
    write_text(path, "".join(line + "\n" for line in kept))


def _save_model(trainer: Any, out: Path, turn_ends: Sequence[int] = ()) -> None:
    """Save weights, config and tokenizer under a temporary name, then move them into ``out``.

    ``turn_ends``: ids a named training template ends turns with; generation stops on them too."""
    staging = out / ".final.tmp"
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True  # the Trainer turns the KV cache off for training; the saved model generates
    if turn_ends and model.generation_config is not None:
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = [*eos, *(i for i in turn_ends if i not in eos)]
    trainer.save_model(str(staging))  # every process takes part (ZeRO-3 gathers the weights)
    if not trainer.is_world_process_zero():
        return
    (staging / "training_args.bin").unlink(missing_ok=True)
    for item in staging.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()


def _stats(
    config: TrainConfig,
    source: Any,
    counts: dict[str, Any],
    trainer: Any,
    result: Any,
    times: dict[str, float],
    resume_from: Path | None,
    base: str,
) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    return {
        "kind": "training",
        "schema_version": TrainingStats.VERSION,
        "name": Path(config.out).name,
        "domain": config.domain,
        "base_model": base,
        "data": {
            "path": str(source.path),
            "files": [str(f) for f in source.files],
            "curation": _curation_summary(source.curation),
        },
        "hparams": config.hparams,
        "settings": config.settings,
        "resolved": _resolved(trainer.args),
        "examples": counts,
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0.0), 4),
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else result.training_loss,
        "train_loss": result.training_loss,
        "wall_time_s": round(times["total"], 2),
        "train_time_s": round(times["train"], 2),
        "resumed_from_step": int(_CHECKPOINT.match(resume_from.name).group(1)) if resume_from else None,
        "hardware": hardware(trainer.args.world_size),
        "command": command(config),
    }


def _resolved(args: Any) -> dict[str, Any]:
    """What the recipe's ``auto`` and derived values became on this machine."""
    init = args.model_init_kwargs or {}
    return {
        "processes": args.world_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "dtype": str(init.get("dtype")),
        "attn_implementation": init.get("attn_implementation"),
        "use_liger_kernel": bool(args.use_liger_kernel),
        "deepspeed": args.deepspeed,
    }


def _curation_summary(stats: CurationStats | None) -> dict[str, Any] | None:
    """What the curation card says about the data: its counts and where it came from."""
    if stats is None:
        return None
    return {"rows": stats.rows, "problems": stats.problems, "rejected": stats.rejected,
            "source": stats.source.name, "teacher": stats.teacher.get("model"),
            "funnel": {s.stage: f"{s.n_in}->{s.n_out}" for s in stats.funnel}}


def hardware(processes: int) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    info: dict[str, Any] = {
        "processes": processes,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }
    if torch.cuda.is_available():
        info["accelerator"] = torch.cuda.get_device_name(0)
        info["gpus_per_node"] = torch.cuda.device_count()
    else:
        info["accelerator"] = "cpu"
    return info


def command(config: TrainConfig) -> str:
    parts = ["branchmerge train", config.domain]
    for path in config.data:
        parts += ["--data", path]
    parts += ["--base", config.base]
    parts += ["--out", config.out, "--hparams", config.hparams]
    if config.max_steps:
        parts += ["--max-steps", str(config.max_steps)]
    for key, value in config.overrides.items():
        parts += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return " ".join(parts)


class MetricsLog(TrainerCallback):
    """Append every trainer log line to a JSONL file as it happens (main process only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any):
        if state.is_world_process_zero and logs:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")
