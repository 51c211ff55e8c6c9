"""A lab run's background processes (acdkit.labkit.procs) end with it on every way out, and a
run killed outright is cleaned up by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from acdkit.labkit.procs import ProcessGroup

# The runner starts a process group whose leader has a child of its own (like an RQ worker and
# its work horse; its pid goes to the log), then waits to be ended.
RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from acdkit.labkit.procs import ProcessGroup
    pidfile, log = Path(sys.argv[1]), Path(sys.argv[2])
    with ProcessGroup(pidfile, grace=2.0, marker=b"sleep") as group:
        group.start(["sh", "-c", "sleep 300 & echo $!; sleep 301"], log=log)
        time.sleep(300)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # a zombie has ended


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _start_runner(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """The runner, and the pids of its group's leader and the leader's child."""
    log, pidfile = tmp_path / "child.log", tmp_path / "pids"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(pidfile), str(log)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    return runner, [int(pidfile.read_text().split()[0]), int(log.read_text().split()[0])]


def test_sigterm_of_the_runner_ends_the_whole_group(tmp_path: Path) -> None:
    runner, pids = _start_runner(tmp_path)
    assert all(_alive(p) for p in pids)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(15) == 128 + signal.SIGTERM
    assert _wait_gone(pids) == []
    assert not (tmp_path / "pids").exists()


def test_a_killed_runner_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    runner, pids = _start_runner(tmp_path)
    runner.kill()
    runner.wait(5)
    assert all(_alive(p) for p in pids)  # orphans, as after `kill -9` of a demo
    with ProcessGroup(tmp_path / "pids", marker=b"sleep"):
        assert _wait_gone(pids) == []
