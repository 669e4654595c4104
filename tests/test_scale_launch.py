"""``branchmerge launch``: the multi-node accelerate command, and a real 2-process DDP (gloo) run of the
tiny model on the CPU that reaches the single-process loss."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from branchmerge.errors import UserError
from branchmerge.train.launch import Launch, launch_command
from tests.train_helpers import corpus, toy_rows, write_curation

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "math", "--hparams", "tinyr1", "--data", "D", "--base", "M", "--out", "O"]


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_multi_node_command_names_machines_rank_and_main_address():
    cmd = launch_command(Launch(machines=4, gpus_per_machine=8, machine_rank=2, main_address="10.0.0.1",
                                zero3=True), TRAIN)
    argv = cmd.argv
    assert argv[:2] == ["accelerate", "launch"] and cmd.env == {}
    assert (_flag(argv, "--num_machines"), _flag(argv, "--num_processes"), _flag(argv, "--machine_rank")) == (
        "4", "32", "2")
    assert _flag(argv, "--main_process_ip") == "10.0.0.1" and "--multi_gpu" in argv and "--same_network" in argv
    assert argv[argv.index("-m"):argv.index("-m") + 3] == ["-m", "branchmerge", "train"]
    assert argv[-2:] == ["--set", "deepspeed=zero3"]  # ZeRO-3 through the training hyper-parameters
    assert cmd.shell().startswith("accelerate launch --num_machines 4")


def test_launch_refuses_what_cannot_work():
    with pytest.raises(UserError, match="main-address"):
        Launch(machines=2, gpus_per_machine=8)
    with pytest.raises(UserError, match="machine-rank"):
        Launch(machines=2, machine_rank=2, main_address="h")
    with pytest.raises(UserError, match="GPUs"):
        Launch(gpus_per_machine=2, cpu=True, zero3=True)
    with pytest.raises(UserError, match="nothing to launch"):
        launch_command(Launch(), [])
    with pytest.raises(UserError, match="runs training"):
        launch_command(Launch(), ["curate", "math"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_two_process_gloo_run_matches_the_single_process_loss(tmp_path):
    from branchmerge.tiny import build_tiny_model

    rows = toy_rows(64)
    base = build_tiny_model(tmp_path / "base", corpus(rows), vocab_size=300)
    data = write_curation(tmp_path / "curated", rows)
    common = ["math", "--data", str(data), "--base", str(base), "--hparams", "demo", "--max-steps", "6",
              "--set", "logging_steps=1"]
    one = subprocess.run([sys.executable, "-m", "branchmerge", "train", *common, "--out", str(tmp_path / "one"),
                          "--set", "per_device_train_batch_size=4"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "branchmerge", "launch", "--cpu", "--gpus-per-machine", "2",
                          "--main-port", str(_free_port()), "--", "train", *common, "--out", str(tmp_path / "two"),
                          "--set", "per_device_train_batch_size=2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    stats = {name: json.loads((tmp_path / name / "stats.json").read_text()) for name in ("one", "two")}
    one, two = stats["one"]["resolved"], stats["two"]["resolved"]
    assert one["processes"] == 1 and two["processes"] == 2  # really two DDP ranks
    assert one["global_batch_size"] == two["global_batch_size"] == 4
    single, double = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(single) == len(double) == 6  # rank 0 alone writes the metrics
    assert double[0] == pytest.approx(single[0], rel=1e-3)  # the same first batch, split over two ranks
    assert double[-1] == pytest.approx(single[-1], rel=0.03)  # and the same training curve
    assert double[-1] < 0.9 * double[0]
