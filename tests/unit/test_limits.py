"""The shared limits: a log that cannot flood, the open-file limit, loops that start again."""

from __future__ import annotations

import asyncio
import logging
import resource

import pytest

from acdkit.bootstrap import supervised
from acdkit.limits import RateLimitedLog, raise_fd_limit


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_rate_limited_log_writes_a_burst_then_one_summary(
        caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    say = RateLimitedLog(logging.getLogger("test.flood"), burst=3, per=60.0, clock=ticks)
    with caplog.at_level(logging.INFO):
        written = [say.info("flood", "line %d", n) for n in range(1_000)]
        assert written.count(True) == 3 and say.held("flood") == 997
        assert say.info("other", "another key has its own lines")
        ticks.t = 61.0
        assert say.info("flood", "a new window")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["line 0", "line 1", "line 2", "another key has its own lines",
                        "flood: 997 more like this in the last 61 s", "a new window"]


def test_tracebacks_only_on_written_lines(caplog: pytest.LogCaptureFixture) -> None:
    say = RateLimitedLog(logging.getLogger("test.tb"), burst=1)
    for _ in range(10):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            say.error("boom", "it failed", exc_info=True)
    assert caplog.text.count("Traceback") == 1


def test_fd_soft_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        now_soft, now_hard = raise_fd_limit()
        assert now_hard == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now_soft
        assert now_soft == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_failing_loop_is_started_again_with_a_backoff() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        runs.append(loop.time())
        if len(runs) < 3:
            raise RuntimeError("a bad record")
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervised("flaky", flaky, backoff=(0.05, 0.1)))
    for _ in range(100):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runs) == 3
    assert runs[1] - runs[0] >= 0.05 and runs[2] - runs[1] >= 0.1
