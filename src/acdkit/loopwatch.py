"""Seeing a held event loop: every call, agent and dial-back of ``serve`` shares one loop, so
one callback that runs long (a blocking call, a burst of work, a starved process) delays all
of them at once, and nothing else in the log says why.

``watch_loop`` wakes every ``period`` seconds and logs a warning when it woke ``threshold``
seconds or more late, with how long the loop was held (rate-limited: a stalled process must
not also flood its log). The ARI client logs its own slow answers (``ari/client.py``), so a
late step in a call's log is either Asterisk answering slowly or this loop being held.
"""

from __future__ import annotations

import asyncio
import logging

from acdkit.limits import RateLimitedLog

log = logging.getLogger(__name__)
PERIOD = 0.25  # seconds between wake-ups: the cost is one timer per period
THRESHOLD = 0.5  # seconds late that count as a held loop


async def watch_loop(period: float = PERIOD, threshold: float = THRESHOLD) -> None:
    """Run until cancelled, logging each time the loop was held ``threshold`` s or more."""
    loop = asyncio.get_running_loop()
    limited = RateLimitedLog(log, burst=5, per=60.0)
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        late = loop.time() - before - period
        if late >= threshold:
            limited.warning("event loop held", "event loop held for %.0f ms: every call in "
                            "this process waited that long", 1000 * late)
