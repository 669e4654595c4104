"""``branchmerge train {math,code,science}``: one SFT branch per domain."""

from __future__ import annotations

from typing import Annotated

import typer

from branchmerge.train.config import TRAIN_DOMAINS

HELP = """Train one SFT branch (full-parameter, TRL SFTTrainer) on a curated domain dataset.

DATA is a `branchmerge curate` output, or parquet/jsonl files with a chat `messages` column.
The recipe (tinyr1 = the paper's per-domain settings, demo = the tiny CPU version, or a YAML
file) sets every SFTConfig field; --set overrides any of them. OUT becomes a Hugging Face model
directory with metrics.jsonl, stats.json and a training card README.md.

Example: branchmerge train math --data runs/curated/math --base runs/tiny --out runs/math --recipe demo

Data Mixture baseline (one model on every domain): branchmerge train mixture --data runs/curated/math
--data runs/curated/code --data runs/curated/science --base runs/tiny --out runs/mixture --recipe demo

Several GPUs with DeepSpeed ZeRO-3 (the tinyr1 recipe turns it on):
accelerate launch --num_processes 8 -m branchmerge train code --recipe tinyr1 --data D --base M --out O
"""


def register(app: typer.Typer) -> None:
    @app.command("train", help=HELP)
    def train_command(
        domain: Annotated[
            str, typer.Argument(help=f"One of {', '.join(TRAIN_DOMAINS)} (mixture: several --data at once).")
        ],
        data: Annotated[
            list[str],
            typer.Option("--data", help="Curation output dir, or parquet/jsonl file; repeat to train on a mixture."),
        ],
        base: Annotated[str, typer.Option("--base", help="Base model: local directory or Hub id.")],
        out: Annotated[str, typer.Option("--out", help="Output directory (becomes the model dir).")],
        recipe: Annotated[str, typer.Option("--recipe", help="tinyr1, demo, or a recipe YAML file.")] = "demo",
        max_steps: Annotated[
            int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps.")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from the latest checkpoint in OUT.")
        ] = False,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="Override a setting: key=value (any SFTConfig field). Repeatable."),
        ] = None,
    ) -> None:
        from branchmerge.console import out as stdout
        from branchmerge.train.config import TrainConfig, parse_overrides
        from branchmerge.train.run import train

        config = TrainConfig(
            domain=domain,
            data=",".join(data),
            base=base,
            out=out,
            recipe=recipe,
            max_steps=max_steps,
            resume=resume,
            overrides=parse_overrides(set_ or []),
        )
        stats = train(config)
        if stats:
            stdout.print(
                f"{domain} branch -> {out}: {stats['steps']} steps, {stats['tokens_seen']:,} tokens, "
                f"final loss {stats['final_loss']:.4f}"
            )
