"""The attack suite: hostile programs through ``branchmerge sandbox run``, in every safe tier
(forced explicitly), each with its expected verdict, and the host checked afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

import branchmerge
from tests.sandbox_helpers import SAFE_PARAMS, HostWatch, cli_run, needs_root

pytestmark = needs_root
ONE = {"inputs": ["1\n"], "outputs": ["1\n"]}
FAST = ("--timeout-s", "1")


@pytest.fixture
def host(monkeypatch):
    watch = HostWatch(monkeypatch)
    yield watch
    watch.assert_clean()


def run_in(tier: str, tmp_path: Path, code: str, tests: dict = ONE, *args: str) -> dict:
    rc, result = cli_run(tmp_path, code, tests, "--tier", tier, *FAST, *args)
    assert rc == 0, result
    assert result["tier"] == tier
    return result


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_fork_bomb(tier, tmp_path, host):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    result = run_in(tier, tmp_path, code)
    assert result["verdict"] == "time_limit"
    assert time.monotonic() - start < 8
    assert host.uids  # it ran as a dedicated uid, whose processes are all gone (fixture)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
@pytest.mark.parametrize("code", ["x = bytearray(8 * 1024 ** 3)\n", "a = []\nwhile True:\n    a.append(' ' * 10 ** 7)\n"])
def test_memory_bomb(tier, code, tmp_path, host):
    result = run_in(tier, tmp_path, code, ONE, "--memory-mb", "256", "--timeout-s", "5")  # slack for a loaded CI
    assert result["verdict"] == "memory_limit"


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_infinite_loop_and_sigterm_ignored(tier, tmp_path, host):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = run_in(tier, tmp_path, code)
    assert result["verdict"] == "time_limit"
    assert 0.9 < result["tests"][0]["time_s"] < 3


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_one_gigabyte_of_output(tier, tmp_path, host):
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    start = time.monotonic()
    result = run_in(tier, tmp_path, code, ONE, "--output-limit-kb", "1024")
    assert result["verdict"] == "output_limit"
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_write_outside_its_dir(tier, tmp_path, host):
    target = Path(tempfile.mkdtemp(prefix="branchmerge-escape-"))  # world-writable: only the sandbox stops it
    target.chmod(0o777)
    victims = [target / "escape.txt", Path("/tmp/branchmerge-escape-test.txt"), Path("/dev/shm/escape.txt")]
    code = (
        f"for path in {[str(v) for v in victims]!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n"
        "    except OSError:\n        pass\n"  # in bwrap /tmp and /dev/shm are private: writes may land there
        "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n"
    )
    try:
        result = run_in(tier, tmp_path, code, {"inputs": [""], "outputs": ["ok"]})
        assert result["verdict"] == "accepted", result  # its own working dir is writable
        assert not any(v.exists() for v in victims)
    finally:
        shutil.rmtree(target)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_secrets_shadow_and_callers_files(tier, tmp_path, host, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_s3cr3t_value")
    own_file = Path(branchmerge.__file__)
    code = (
        "import os\n"
        f"for path in ['/etc/shadow', {str(own_file)!r}, '/root/.bashrc', '/proc/1/environ']:\n"
        "    try:\n        open(path).read()\n        print('read ' + path)\n"
        "    except OSError:\n        print('denied')\n"
        "print('leak' if any('s3cr3t' in v for v in os.environ.values()) else 'clean')\n"
    )
    result = run_in(tier, tmp_path, code, {"inputs": [""], "outputs": ["denied\n" * 4 + "clean"]})
    assert result["verdict"] == "accepted", result
    assert "s3cr3t" not in str(result)


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_connect_to_a_local_listener(tier, tmp_path, host):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        code = (
            "import socket\nresults = []\n"
            "for family in (socket.AF_INET, socket.AF_INET6):\n"
            "    try:\n        s = socket.socket(family)\n        s.settimeout(0.5)\n"
            f"        s.connect(('127.0.0.1', {port}) if family == socket.AF_INET else ('::1', {port}))\n"
            "        results.append('connected')\n"
            "    except OSError:\n        results.append('blocked')\n"
            "print(' '.join(results))\n"
        )
        result = run_in(tier, tmp_path, code, {"inputs": [""], "outputs": ["blocked blocked"]})
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever got through
    assert result["verdict"] == "accepted", result


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_kill_its_parent(tier, tmp_path, host):
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\nprint(1)\n"
    result = run_in(tier, tmp_path, code)
    assert result["verdict"] == "runtime_error"
    assert os.getpgid(0) >= 0  # and we (the supervisor) are still here


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_setsid_daemon_does_not_outlive_the_run(tier, tmp_path, host):
    code = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "        while True:\n            time.sleep(0.05)\n"
        "    os._exit(0)\n"
        "print(input())\n"
    )
    result = run_in(tier, tmp_path, code, {"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]})
    assert result["verdict"] == "accepted"
    assert result["passed"] == 2  # the daemon of test 1 did not hang test 2 either


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_exit_before_printing(tier, tmp_path, host):
    result = run_in(tier, tmp_path, "import sys\nsys.exit(0)\nprint(1)\n")
    assert result["verdict"] == "wrong_answer"


@pytest.mark.parametrize("tier", SAFE_PARAMS)
def test_reading_the_expected_output(tier, tmp_path, host):
    # walk every frame and every object in the process looking for the expected answer
    code = (
        "import gc, sys\nfound = set()\nneedle = str(4242 * 100 + 42)\n"
        "def scan(obj):\n"
        "    for v in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()):\n"
        "        if isinstance(v, str) and v is not needle and needle in v:\n            found.add(v.strip())\n"
        "f = sys._getframe()\nwhile f:\n    scan(f.f_locals)\n    scan(f.f_globals)\n    f = f.f_back\n"
        "for o in gc.get_objects():\n    scan(o)\n"
        "print(sorted(found)[0] if found else 'nothing')\n"
    )
    result = run_in(tier, tmp_path, code, {"inputs": ["7\n"], "outputs": ["424242\n"]})
    assert result["verdict"] == "wrong_answer"
    assert "nothing" in result["tests"][0]["detail"]
