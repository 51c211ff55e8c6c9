"""The lab's Redis ACL user (scripts/lab-lib.sh ``lab_redis_acl``, asterisk/compose.yaml):
acdkit and RQ work as that user, admin commands and other keys are refused, and ``doctor``
warns unless acdkit logs in as an ACL user of its own. docs/security-policy.md."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from poolkit import RULES, T0, ready_agent, task
from tests.conftest import free_port

from acdkit.cli.worker import Supervisor
from acdkit.config import load_settings
from acdkit.doctor import check_redis, check_redis_acl
from acdkit.jobqueue import RqJobQueue
from acdkit.store.connection import connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def lab_acl() -> list[str]:
    out = subprocess.run(["bash", "-c", "source scripts/lab-lib.sh && lab_redis_acl"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return out.splitlines()


@pytest.fixture
def acl_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             *lab_acl()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = load_settings(ROOT / "asterisk" / "acdkit.toml", env={}).redis.url
    url = url.replace("127.0.0.1:6379", f"127.0.0.1:{port}")
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server failed"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait()


async def _pool_work(url: str) -> None:
    pool = Pool(await connect(url), RULES)
    try:
        await pool.add_task(task("t1"), T0)
        await ready_agent(pool, "a1")
        assert await pool.claim("a1", "t1", T0)
    finally:
        await pool.close()


def test_acdkit_and_rq_work_as_the_lab_acl_user(acl_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACDKIT_REDIS_URL", acl_url)
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    client = redis.Redis.from_url(acl_url)
    for command in (("FLUSHALL",), ("CONFIG", "SET", "dir", "/tmp"), ("SET", "other", "x"),
                    ("KEYS", "*"), ("SHUTDOWN",), ("ACL", "SETUSER", "x", "on")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    client.close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(acl_url.replace("acdkit:acdkit-lab-redis@", "")).ping()
    asyncio.run(_pool_work(acl_url))
    jobs = RqJobQueue(acl_url)
    try:
        job = jobs.enqueue("callbacks", "acdkit.jobs.promote_due", job_id="promote-1")
        Supervisor(acl_url, "acl-test", burst=True).run()
        assert jobs.status(job) == "finished"
    finally:
        jobs.close()
    settings = load_settings(env={"ACDKIT_REDIS_URL": acl_url})
    assert next(c.status for c in asyncio.run(check_redis(settings))) == "OK"
    assert check_redis_acl(settings).status == "OK"


@pytest.mark.parametrize(("url", "status"), [
    ("redis://127.0.0.1:6379/0", "WARN"), ("redis://:secret@127.0.0.1:6379/0", "WARN"),
    ("redis://default:secret@127.0.0.1:6379/0", "WARN"),
    ("redis://acdkit:secret@127.0.0.1:6379/0", "OK")])
def test_doctor_warns_without_an_acl_user_even_on_loopback(url: str, status: str) -> None:
    assert check_redis_acl(load_settings(env={"ACDKIT_REDIS_URL": url})).status == status
