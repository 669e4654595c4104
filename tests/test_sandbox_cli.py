"""``branchmerge sandbox run`` / ``doctor``: exit codes, output shapes, tier selection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from branchmerge.cli import app, main
from branchmerge.sandbox import cgroups, session
from tests.sandbox_helpers import cli_run

AB = {"inputs": ["2 3\n"], "outputs": ["5\n"]}


def test_verdicts_exit_zero_and_json_shape(tmp_path):
    rc, result = cli_run(tmp_path, "print(6)\n", AB, "--timeout-s", "2", "--memory-mb", "512")
    assert rc == 0 and result["verdict"] == "wrong_answer"
    assert set(result) >= {"verdict", "tests", "stderr", "tier", "passed", "total", "time_s", "layers"}
    assert result["tests"][0]["verdict"] == "wrong_answer" and result["tests"][0]["time_s"] >= 0


def test_several_solutions_human_and_json(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(AB))
    (tmp_path / "a.py").write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    (tmp_path / "b.py").write_text("print(1 / 0)\n")
    args = ["sandbox", "run", str(tmp_path / "a.py"), str(tmp_path / "b.py"), "--tests", str(tmp_path / "t.json")]
    res = CliRunner().invoke(app, [*args, "--json", "--workers", "2"])
    assert res.exit_code == 0
    assert [json.loads(line)["verdict"] for line in res.stdout.splitlines()] == ["accepted", "runtime_error"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "accepted" in res.stdout and "ZeroDivisionError" in res.stdout


def main_exit(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The real entry point (it turns UserError into its exit code): (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["branchmerge", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_bad_arguments_exit_two(tmp_path, monkeypatch, capsys):
    sol = tmp_path / "s.py"
    sol.write_text("print(5)\n")
    rc, msg = main_exit(monkeypatch, capsys, "sandbox", "run", str(sol), "--tests", str(tmp_path / "missing.json"))
    assert rc == 2 and "cannot read tests" in msg
    (tmp_path / "bad.json").write_text(json.dumps({"inputs": ["1"], "outputs": []}))
    rc, msg = main_exit(monkeypatch, capsys, "sandbox", "run", str(sol), "--tests", str(tmp_path / "bad.json"))
    assert rc == 2 and "must pair up" in msg
    (tmp_path / "t.json").write_text(json.dumps(AB))
    for extra in (["--tier", "none"], ["--tier", "chroot"], ["--timeout-s", "0"], ["--language", "cobol"]):
        rc, msg = main_exit(monkeypatch, capsys, "sandbox", "run", str(sol), "--tests", str(tmp_path / "t.json"), *extra)
        assert rc == 2, (extra, msg)
        if extra == ["--tier", "none"]:
            assert "--unsafe" in msg


def test_unsafe_tier_only_when_asked(tmp_path):
    rc, result = cli_run(tmp_path, "print(5)\n", AB, "--tier", "none", "--unsafe")
    assert rc == 0 and result["tier"] == "none" and result["verdict"] == "accepted"
    assert result["layers"]["seccomp"] is False and result["layers"]["landlock_abi"] == 0


def test_sandbox_failure_exits_three(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "HARNESS", "raise SystemExit('harness broken')")
    rc, result = cli_run(tmp_path, "print(5)\n", AB)
    assert rc == 3 and result["verdict"] == "sandbox_error"
    assert "did not start" in result["detail"] and "harness broken" in result["stderr"]


def test_doctor_reports_the_tiers():
    res = CliRunner().invoke(app, ["sandbox", "doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [t["tier"] for t in report["tiers"]] == ["bwrap", "unshare", "landlock", "none"]
    assert report["selected"] in ("bwrap", "unshare", "landlock")
    chosen = next(t for t in report["tiers"] if t["tier"] == report["selected"])
    assert chosen["works"] and chosen["layers"]["seccomp"]
    assert chosen["isolates"] and chosen["does_not"]  # plainly, for every tier
    cgroup = report["cgroup"]
    assert cgroup["available"] == (cgroups.hierarchy() is not None)
    assert (cgroup["where"] if cgroup["available"] else cgroup["why_not"]) and cgroup["covers"]
    human = CliRunner().invoke(app, ["sandbox", "doctor"])
    assert human.exit_code == 0 and "untrusted code runs in" in human.stdout
    assert "cgroup:" in human.stdout and "does not isolate" in human.stdout


def test_doctor_says_what_the_fallback_covers_without_a_cgroup(monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchy", lambda: None)
    monkeypatch.setattr(cgroups, "_find", lambda: "cgroup v2: no delegation here (test)")
    report = json.loads(CliRunner().invoke(app, ["sandbox", "doctor", "--json"]).stdout)
    assert report["cgroup"]["available"] is False and "no delegation here" in report["cgroup"]["why_not"]
    assert "per process only" in report["cgroup"]["covers"]


def test_out_file_and_overwrite(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.json").write_text(json.dumps(AB))
    (tmp_path / "a.py").write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    (tmp_path / "b.py").write_text("print(6)\n")
    out = tmp_path / "results.jsonl"
    args = ["sandbox", "run", str(tmp_path / "a.py"), str(tmp_path / "b.py"), "--tests", str(tmp_path / "t.json"),
            "-o", str(out), "--workers", "2"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["solution"], r["verdict"]) for r in rows] == [(str(tmp_path / "a.py"), "accepted"),
                                                             (str(tmp_path / "b.py"), "wrong_answer")]
    rc, msg = main_exit(monkeypatch, capsys, *args)  # refused before any sandbox starts
    assert rc == 2 and "--overwrite" in msg and msg.count("\n") == 1
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    foreign = tmp_path / "mine.jsonl"
    foreign.write_text('{"my": "data"}\n')
    rc, msg = main_exit(monkeypatch, capsys, *args[:-4], "-o", str(foreign), "--overwrite")
    assert rc == 2 and "not written by branchmerge" in msg and foreign.read_text() == '{"my": "data"}\n'


def test_settings_errors_are_one_line(tmp_path, monkeypatch, capsys):
    sol = tmp_path / "s.py"
    sol.write_text("print(5)\n")
    (tmp_path / "t.json").write_text(json.dumps(AB))
    for extra, words in ((["--workers", "0"], "--workers"), (["--memory-mb", "lots"], "--memory-mb"),
                         (["--tier", "chroot"], "valid: bwrap, unshare, landlock, none")):  # fmt: skip
        rc, msg = main_exit(monkeypatch, capsys, "sandbox", "run", str(sol), "--tests", str(tmp_path / "t.json"), *extra)
        assert rc == 2 and words in msg and msg.strip().count("\n") == 0, msg


def test_terminal_escapes_from_a_solution_are_shown_inert(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(AB))
    (tmp_path / "s.py").write_text("import sys\nsys.stderr.write('\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m')\nraise SystemExit\n")
    res = CliRunner().invoke(app, ["sandbox", "run", str(tmp_path / "s.py"), "--tests", str(tmp_path / "t.json")])
    assert res.exit_code == 0 and "wrong_answer" in res.stdout
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\x9b" not in res.stdout
    assert "\\x1b]0;pwned\\x07" in res.stdout


def test_ctrl_c_stops_the_running_solutions_at_once(tmp_path):
    """Ctrl-C while two sandboxes each run a solution that sleeps 30 s: no further solution starts,
    the running ones are killed, and the command ends within seconds in one line, exit 130, with
    no traceback and no half-written results file."""
    (tmp_path / "t.json").write_text(json.dumps(AB))
    files = []
    for i in range(6):
        files.append(tmp_path / f"s{i}.py")
        files[-1].write_text("import time\ntime.sleep(30)\n")
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "branchmerge", "sandbox", "run", *map(str, files), "--tests", str(tmp_path / "t.json"),
         "--timeout-s", "20", "--workers", "2", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(3)  # both sandboxes are running their first solution
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - start < 8, "the running solutions were waited for"
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists()
