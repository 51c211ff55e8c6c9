"""`acdkit doctor` against a real redis-server and a real `acdkit worker`: the worker's RQ
heartbeat and its process are seen, and its absence is a FAIL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from acdkit.config import load_settings
from acdkit.doctor_install import check_install, running_roles

pytestmark = pytest.mark.integration


def _checks(redis_url: str) -> dict[str, str]:
    import asyncio

    settings = load_settings(overrides={"redis.url": redis_url})
    return {c.check: c.status for c in asyncio.run(check_install(settings))}


def test_doctor_sees_a_running_worker_and_its_absence(redis_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    before = _checks(redis_url)
    assert before["process worker"] == "FAIL"
    assert before["lag"] == "OK" and before["redis memory"] in ("OK", "WARN")
    env = {**os.environ, "ACDKIT_REDIS_URL": redis_url}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "acdkit", "worker"], env=env,
                                  stdout=log, stderr=log, start_new_session=True)
    try:
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while not client.scard("rq:workers") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _checks(redis_url)["process worker"] == "OK"
        assert "worker" in running_roles()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        finally:  # nothing of the worker outlives the test, whatever happened
            if _group_alive(worker.pid):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
    assert _checks(redis_url)["process worker"] == "FAIL"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
