"""Background processes a lab run starts (``acdkit serve``, ``acdkit worker``), ended on every
way out: normal return, an exception, Ctrl-C, SIGTERM or SIGHUP, interpreter exit, and even a
SIGKILL of the runner (the next run ends what the last one left, from its pid file).

Each process gets its own session, so its whole group (an RQ worker's work horse too) is
ended: SIGTERM, then SIGKILL after ``grace`` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self


class ProcessGroup:
    """Processes started with ``start()`` and all ended by ``stop()`` (or leaving ``with``)."""

    def __init__(self, pidfile: Path, *, grace: float = 10.0, marker: bytes = b"acdkit") -> None:
        self.pidfile = pidfile
        self.grace = grace
        self.marker = marker  # in the command line of every process started here
        self.procs: list[subprocess.Popen[bytes]] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Self:
        end_leftovers(self.pidfile, self.marker)
        atexit.register(self.stop)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, _raise_exit)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        atexit.unregister(self.stop)

    def start(self, command: Sequence[str], *, log: Path,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``command`` in a session of its own, output to ``log``; remember its pid."""
        with log.open("wb") as out:
            proc = subprocess.Popen(list(command), env=dict(env) if env else None,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        self._write_pids()
        return proc

    def stop(self) -> None:
        """SIGTERM every group, SIGKILL the ones still there after ``grace`` s; reap them."""
        for proc in self.procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            _signal_group(proc.pid, signal.SIGKILL)  # the group may outlive its leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
        self.procs.clear()
        self.pidfile.unlink(missing_ok=True)

    def _write_pids(self) -> None:
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text("".join(f"{p.pid}\n" for p in self.procs))


def end_leftovers(pidfile: Path, marker: bytes = b"acdkit") -> list[int]:
    """End the process groups a killed earlier run left (listed in ``pidfile``); a pid now
    used by an unrelated process (its command line lacks ``marker``) is left alone."""
    ended: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for line in pidfile.read_text().split():
            pid = int(line) if line.isdigit() else 0
            if pid and marker in _cmdline(pid):
                _signal_group(pid, signal.SIGKILL)
                ended.append(pid)
        pidfile.unlink()
    return ended


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C does, so every ``finally`` runs."""
    raise SystemExit(128 + signum)
