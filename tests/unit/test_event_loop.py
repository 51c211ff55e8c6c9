"""The commands, serve first, run on uvloop (docs/benchmarks.md, "The call path, change by
change")."""

from __future__ import annotations

import asyncio

import uvloop

from acdkit.cli.common import run


async def loop_and_a_thread() -> tuple[asyncio.AbstractEventLoop, int]:
    # to_thread and a subprocess: what serve's speech and media paths use
    proc = await asyncio.create_subprocess_exec("true")
    return asyncio.get_running_loop(), await asyncio.to_thread(lambda: 7) + await proc.wait()


def test_commands_run_on_uvloop() -> None:
    loop, value = run(loop_and_a_thread())
    assert isinstance(loop, uvloop.Loop)
    assert value == 7
    assert loop.is_closed()
