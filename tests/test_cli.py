"""The command tree: every stage is listed, has help with an example, and bad input exits 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from branchmerge import __version__
from branchmerge.cli import STAGES, app

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [*STAGES, "run"]:
        assert name in result.output


@pytest.mark.parametrize("name", [*STAGES, "run"])
def test_each_command_has_help_with_an_example(name):
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "example" in result.output.lower()


def test_version_and_module_entry_point():
    assert runner.invoke(app, ["--version"]).output.strip() == f"branchmerge {__version__}"
    proc = subprocess.run([sys.executable, "-m", "branchmerge", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"branchmerge {__version__}"


def test_unknown_command_exits_2():
    proc = subprocess.run([sys.executable, "-m", "branchmerge", "distill"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "distill" in proc.stderr
