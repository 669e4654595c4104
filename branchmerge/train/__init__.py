"""train stage: one full-parameter SFT branch per domain with TRL's ``SFTTrainer``.

Modules: ``config`` (the run's settings and the recipes they come from), ``data`` (finding,
checking and tokenizing chat ``messages`` with loss on the assistant turn only), ``run`` (the
training run and its outputs), ``card`` (the training card), ``cli`` (``branchmerge train``).
Recipes live in ``branchmerge/recipes/train_<name>.yaml``; ``zero3.json`` is the DeepSpeed
ZeRO-3 config that the ``tinyr1`` hyper-parameters select with ``deepspeed: zero3``.

Several GPUs or nodes (what TinyR1 did: 32 GPUs, ZeRO-3, one process per GPU)::

    # one node, 8 GPUs
    accelerate launch --num_processes 8 -m branchmerge train math \\
        --hparams tinyr1 --data runs/curated/math --base deepseek-ai/DeepSeek-R1-Distill-Qwen-32B \\
        --out runs/branches/math

    # 4 nodes x 8 GPUs: run on every node with its own --machine_rank
    accelerate launch --num_machines 4 --num_processes 32 --machine_rank $RANK \\
        --main_process_ip $MASTER_ADDR --main_process_port 29500 \\
        -m branchmerge train code --hparams tinyr1 --data ... --base ... --out ...

The global batch (96 or 32 in the hyper-parameters) stays fixed: gradient accumulation is derived from
the number of processes. ``--set deepspeed=null`` trains without DeepSpeed (small models).
"""
