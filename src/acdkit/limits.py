"""Limits every long-running acdkit process shares: a log that cannot flood, and file descriptors.

A listener that is flooded (a port scan, a slowloris, a misbehaving client) must not also flood
the log: ``RateLimitedLog`` writes at most ``burst`` lines per ``per`` seconds for each key and
then one summary line saying how many it held back. It never writes a traceback.

``raise_fd_limit`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start, so a process
that holds many calls, Redis connections and listener sockets does not run out at the common
default of 1,024 (docs/security.md).
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` lines per ``per`` seconds for each key; the rest are counted.

    ``key`` is a bounded name of what happened (``"agi refused"``), never a peer address:
    one line per window says how many were held back.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 5, per: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.burst = burst
        self.per = per
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (start, written, held)

    def log(self, level: int, key: str, message: str, *args: object,
            exc_info: bool = False) -> bool:
        """Write ``message % args`` unless ``key`` used its lines in this window; True if written.

        ``exc_info`` adds the traceback of the exception being handled, on written lines only.
        """
        now = self.clock()
        start, written, held = self._windows.get(key, (now, 0, 0))
        if now - start >= self.per:
            if held:
                self.logger.log(level, "%s: %d more like this in the last %.0f s",
                                key, held, now - start)
            start, written, held = now, 0, 0
        if written < self.burst:
            self._windows[key] = (start, written + 1, held)
            self.logger.log(level, message, *args, exc_info=exc_info)
            return True
        self._windows[key] = (start, written, held + 1)
        return False

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def info(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def error(self, key: str, message: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, key, message, *args, exc_info=exc_info)

    def held(self, key: str) -> int:
        """How many lines for ``key`` were held back in the current window."""
        return self._windows.get(key, (0.0, 0, 0))[2]


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard limit; return (soft, hard) after it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            logging.getLogger(__name__).warning(
                "could not raise the open-file limit from %d to %d", soft, target)
    return soft, hard
