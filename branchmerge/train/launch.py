"""``branchmerge launch``: run a training command on several processes, GPUs or machines.

It builds (and runs, or with ``--dry-run`` prints) the ``accelerate launch`` command that starts
``branchmerge train ...`` once per GPU. Past one node every machine runs the same command with
its own ``--machine-rank``; ``--main-address`` is the rank-0 machine that the others meet at.
ZeRO-3 is DeepSpeed's, set by the training hyper-parameters (``deepspeed: zero3`` in the tinyr1
ones, ``branchmerge/train/zero3.json``); ``--zero3`` adds ``--set deepspeed=zero3`` for
hyper-parameters that do not ask for it. TinyR1 trained on 4 machines of 8 GPUs:

    branchmerge launch --machines 4 --gpus-per-machine 8 --machine-rank $NODE_RANK \\
        --main-address 10.0.0.1 -- train math --hparams tinyr1 --data D --base M --out O

Rank and address default to the usual environment variables (``NODE_RANK``/``SLURM_NODEID``,
``MASTER_ADDR``), so a cluster scheduler's launch script can leave them out. ``--cpu`` runs the
processes on the CPU (DDP over gloo): the same code path, testable on a laptop.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

import typer

from branchmerge import settings
from branchmerge.errors import UserError
from branchmerge.settings import setting

DEFAULT_PORT = 29500


@dataclass
class Launch:
    command: list[str] = setting(default_factory=list, argument=True,
                                 help="The training command after --: train DOMAIN --data D ...")
    machines: int = setting(1, ge=1, help="Machines (nodes) taking part.")
    gpus_per_machine: int = setting(1, ge=1, help="Processes per machine: one per GPU.")
    machine_rank: int | None = setting(None, ge=0, help="This machine's rank, 0..machines-1 (default: $NODE_RANK or "
                                       "$SLURM_NODEID, else 0).")
    main_address: str | None = setting(None, help="Address of the rank-0 machine (default: $MASTER_ADDR).")
    main_port: int = setting(DEFAULT_PORT, ge=1, le=65535, help="Port the processes meet on.")
    zero3: bool = setting(False, help="Add --set deepspeed=zero3 (DeepSpeed ZeRO-3) to the training command.")
    cpu: bool = setting(False, help="Processes on the CPU (DDP over gloo), for a test run.")
    dry_run: bool = setting(False, help="Print the command instead of running it.")

    def __post_init__(self) -> None:
        settings.validate(self)
        if self.machine_rank is None:
            self.machine_rank = _env_int("NODE_RANK", "SLURM_NODEID")
        self.main_address = self.main_address or os.environ.get("MASTER_ADDR")
        if not 0 <= self.machine_rank < self.machines:
            raise UserError(f"--machine-rank {self.machine_rank} is not in 0..{self.machines - 1}")
        if self.machines > 1 and not self.main_address:
            raise UserError("several machines need --main-address (the rank-0 machine's address; or set MASTER_ADDR)")
        if self.cpu and self.machines > 1:
            raise UserError("--cpu runs on one machine")
        if self.cpu and self.zero3:
            raise UserError("ZeRO-3 (DeepSpeed) needs GPUs; --cpu trains with plain DDP")

    @property
    def processes(self) -> int:
        return self.machines * self.gpus_per_machine


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]  # set on top of the caller's environment

    def shell(self) -> str:
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])


def launch_command(launch: Launch, args: list[str], accelerate: str = "accelerate") -> Command:
    """The ``accelerate launch`` command that runs ``branchmerge ARGS`` on every process.

    Several processes go through torchrun (``--multi_gpu``); on the CPU ``ACCELERATE_USE_CPU`` makes
    each of them a gloo DDP rank (accelerate's own ``--cpu`` flag would start a single process)."""
    if not args:
        raise UserError("nothing to launch: give the command after --, e.g. -- train math --data D --base M --out O")
    if args[0] != "train":
        raise UserError(f"branchmerge launch runs training (`-- train DOMAIN ...`), not {args[0]!r}")
    cmd = [accelerate, "launch", "--num_machines", str(launch.machines), "--num_processes", str(launch.processes),
           "--machine_rank", str(launch.machine_rank), "--dynamo_backend", "no"]
    env = {"ACCELERATE_USE_CPU": "true"} if launch.cpu else {}
    if launch.processes > 1:
        cmd += ["--multi_gpu"]
    elif launch.cpu:
        cmd += ["--cpu"]
    if launch.machines > 1:
        cmd += ["--main_process_ip", str(launch.main_address), "--main_process_port", str(launch.main_port),
                "--rdzv_backend", "static", "--same_network"]
    else:
        cmd += ["--main_process_port", str(launch.main_port)]
    rest = list(args)
    if launch.zero3 and not any(a.startswith("deepspeed=") for a in rest):
        rest += ["--set", "deepspeed=zero3"]
    return Command([*cmd, "-m", "branchmerge", *rest], env)


def _env_int(*names: str) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def _run(spec: Launch) -> None:
    from branchmerge.console import result

    beside = os.path.join(os.path.dirname(sys.executable), "accelerate")  # this environment's, if PATH lacks it
    accelerate = "accelerate" if shutil.which("accelerate") else beside
    cmd = launch_command(spec, list(spec.command), accelerate)
    if spec.dry_run:
        result(cmd.shell())
        return
    if not shutil.which(accelerate):
        raise UserError("accelerate is not installed: pip install accelerate")
    code = subprocess.call(cmd.argv, env={**os.environ, **cmd.env})
    if code:
        raise UserError(f"the launched training exited with status {code}", exit_code=code)


HELP = """Run `branchmerge train` on several GPUs or machines through `accelerate launch`.

Example (machine 0 of 4; run the same on each machine with its rank):

  branchmerge launch --machines 4 --gpus-per-machine 8 --machine-rank 0 --main-address 10.0.0.1 --zero3
  -- train math --hparams tinyr1 --data runs/curated/math --base Qwen/Qwen2.5-32B --out runs/math
"""


def register(app: typer.Typer) -> None:
    function, cls = settings.command(Launch, _run, config_option=False, what="launch")
    app.command("launch", cls=cls, help=HELP)(function)
