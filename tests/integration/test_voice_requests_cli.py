"""``acdkit requests`` against a real Redis: list, show, reply by text (queues the delivery
job on RQ), close (the work order leaves the pool), and clear errors."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer

from acdkit.cli import main
from acdkit.config import RequestSettings
from acdkit.core.routing import PriorityRules
from acdkit.jobqueue import RqJobQueue
from acdkit.speech import tts
from acdkit.store.connection import connect
from acdkit.store.pool import Pool
from acdkit.store.requests import submit_request

pytestmark = pytest.mark.integration


@pytest.fixture
def submitted(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    monkeypatch.setenv("ACDKIT_REQUESTS_AUDIO_DIR", str(tmp_path))

    async def seed() -> str:
        pool = Pool(await connect(redis_url), PriorityRules())
        jobs = RqJobQueue(redis_url)
        task = await submit_request(pool, jobs, number="+12125550123", skill="sales",
                                    audio=tts.speak("my printer is broken"), fmt="wav",
                                    now=time.time(), source="test",
                                    settings=RequestSettings(audio_dir=str(tmp_path)))
        jobs.close()
        await pool.close()
        return task.attributes["ref"]

    return asyncio.run(seed())


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_reply_then_close_by_reference(submitted: str, redis_url: str) -> None:
    code, out = cli("requests", "list", "--json")
    [row] = json.loads(out)
    assert code == 0 and row["ref"] == submitted and row["status"] == "transcribing"
    assert row["task"] == "scheduled"  # held for its transcript
    code, out = cli("requests", "reply", submitted, "--text", "On Monday", "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "replied"
    connection = redis.Redis.from_url(redis_url)
    queued = Queue("requests", connection=connection, serializer=JSONSerializer).jobs
    assert [(j.func_name, list(j.args)) for j in queued] == [
        ("acdkit.jobs.deliver_reply", [row["task_id"]])]
    connection.close()
    code, out = cli("requests", "close", submitted, "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "closed"
    code, out = cli("requests", "show", submitted)
    assert code == 0 and "closed" in out and "request_replied" in out
    [shown] = json.loads(cli("requests", "show", submitted, "--json")[1])
    assert shown["task_state"] == "cancelled" and shown["request"]["reply_text"] == "On Monday"
    code, out = cli("requests", "reply", submitted, "--text", "again")
    assert code != 0 and "closed" in out


def test_an_unknown_reference_is_a_clear_error(submitted: str) -> None:
    code, out = cli("requests", "show", "00000000")
    assert code != 0 and "no voice request '00000000'" in out
