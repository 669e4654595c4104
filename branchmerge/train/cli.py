"""``branchmerge train {math,code,science,mixture}``: one SFT branch per domain.

The options are generated from ``TrainConfig``'s declarations (``branchmerge.settings``).
"""

from __future__ import annotations

import typer

from branchmerge import settings
from branchmerge.train.config import TrainConfig

HELP = """Train one SFT branch (full-parameter, TRL SFTTrainer) on a curated domain dataset.

DATA is a `branchmerge curate` output, or parquet/jsonl files with a chat `messages` column.
The hyper-parameters (tinyr1 = the paper's per-domain settings, demo = the tiny CPU version, or a
YAML file) set every SFTConfig field; --set overrides any of them. OUT becomes a Hugging Face model
directory with metrics.jsonl, stats.json and a training card README.md.

Example: branchmerge train math --data runs/curated/math --base runs/tiny --out runs/math --hparams demo

Data Mixture baseline (one model on every domain): branchmerge train mixture --data runs/curated/math
--data runs/curated/code --data runs/curated/science --base runs/tiny --out runs/mixture --hparams demo

Several GPUs with DeepSpeed ZeRO-3 (the tinyr1 hyper-parameters turn it on):
accelerate launch --num_processes 8 -m branchmerge train code --hparams tinyr1 --data D --base M --out O
"""


def _run(config: TrainConfig) -> None:
    from branchmerge.console import result
    from branchmerge.train.run import train

    stats = train(config)
    if stats:
        result(f"{config.domain} branch -> {config.out}: {stats['steps']} step{'s' * (stats['steps'] != 1)}, "
               f"{stats['tokens_seen']:,} tokens, final loss {stats['final_loss']:.4f}")


def register(app: typer.Typer) -> None:
    function, cls = settings.command(TrainConfig, _run, config_option=False, what="training")
    app.command("train", cls=cls, help=HELP)(function)
    from branchmerge.train.launch import register as register_launch

    register_launch(app)
