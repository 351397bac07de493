"""A fixture's server process dies with the test session, even when pytest is killed (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INNER_TEST = """
import sys, time
from pathlib import Path
from tests.conftest import start_child

def test_hold_a_child():
    with start_child([sys.executable, "-c", "import time; time.sleep(600)"]) as child:
        Path({pid_file!r} + ".tmp").write_text(str(child.pid))
        Path({pid_file!r} + ".tmp").rename({pid_file!r})
        time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a reaper that may never come in a container."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "(zombie)" not in state


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_killed_pytest_takes_its_fixture_process_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TEST.format(pid_file=str(pid_file)))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    pytest_run = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        assert _wait_for(pid_file.exists, 120), "the inner test never started its child"
        child = int(pid_file.read_text())
        assert _alive(child)
    finally:
        pytest_run.send_signal(signal.SIGKILL)  # no finalizer runs: only the kernel can help
        pytest_run.wait(timeout=30)
    assert _wait_for(lambda: not _alive(child), 15), f"child {child} outlived its pytest"
