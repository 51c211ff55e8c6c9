"""Fuzz targets of the wire protocols: ARI events and WebSocket frames, FastAGI headers,
replies and commands, AMI messages as panoramisk parses them (see tests/fuzz/targets.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from panoramisk.message import Message
from tests.fuzz.common import Target, odd_text, splice
from tests.unit.test_ari_events import eventish, json_values  # its 600-input fuzz, reused

from acdkit.agi.protocol import AgiProtocolError, format_command, parse_request, parse_response
from acdkit.ami.link import plain_event
from acdkit.ami.originate import outcome_of_dial_status, outcome_of_reply
from acdkit.ari import events as ev
from acdkit.ari.client import AriClient, AriResponse
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import InvalidInput
from acdkit.core.members import Member, MemberBoard
from acdkit.dialplan_vars import interaction_id

FIXTURES = Path(__file__).resolve().parents[1] / "lab" / "fixtures" / "ari"

# ------------------------------------------------------------------ ARI events (ari/events, client)


def _captured() -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
    for p in sorted(FIXTURES.glob("*.jsonl")):
        found += [json.loads(line) for line in p.read_text().splitlines() if line]
    assert found, f"no captured ARI messages in {FIXTURES}"
    return found


CAPTURED = _captured()


def _replace_at(message: Any, path: list[str], value: Any) -> Any:
    """``message`` with the field at ``path`` (keys, followed while they exist) set to ``value``."""
    if not path or not isinstance(message, dict):
        return value
    key = path[0] if path[0] in message else path[0] + "?"
    return {**message, key: _replace_at(message.get(key), path[1:], value)}


KEYS = ("type", "channel", "peer", "bridge", "playback", "recording", "id", "caller", "number",
        "dialplan", "priority", "args", "digit", "channels", "duration", "cause", "variable",
        "request_id", "status_code", "message_body", "replace_channel", "soft", "duration_ms")
mutated_events = st.builds(_replace_at, st.sampled_from(CAPTURED),
                           st.lists(st.sampled_from(KEYS), min_size=1, max_size=3), json_values)
event_like = st.one_of(json_values, eventish, st.sampled_from(CAPTURED), mutated_events)


def run_parse_event(data: object) -> None:
    try:
        event = ev.parse_event(data)
    except InvalidInput as exc:
        assert str(exc).startswith("ARI event: "), exc
        return
    assert isinstance(event, ev.Event)
    found = ev.channel_id(event)
    assert found is None or isinstance(found, str)


ari_event_target = Target("ari-event", "ari/events.py parse_event + channel_id", event_like,
                          run_parse_event)

frames = st.one_of(st.text(max_size=60), event_like.map(json.dumps),
                   splice(st.sampled_from(CAPTURED).map(json.dumps), odd_text))
_LOOP = asyncio.new_event_loop()
_CLIENT = AriClient("http://127.0.0.1:8088", "fuzz", "fuzz", "fuzz")


def run_ari_frame(text: str) -> None:
    """One WebSocket text frame into the real client: events queue, responses resolve."""
    logger = logging.getLogger("acdkit.ari.client")  # every bad frame logs a warning
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        _one_frame(text)
    finally:
        logger.setLevel(level)  # other tests read acdkit's logs


def _one_frame(text: str) -> None:
    futures = {rid: _LOOP.create_future() for rid in ("1", "2", "3")}
    _CLIENT._pending = {rid: (f, "GET", "asterisk/info") for rid, f in futures.items()}
    _CLIENT._on_text(text)
    for future in futures.values():
        assert not future.done() or isinstance(future.result(), AriResponse)
    while not _CLIENT._events.empty():
        assert isinstance(_CLIENT._events.get_nowait(), ev.Event)
        _CLIENT._events.task_done()


ari_frame_target = Target("ari-frame", "ari/client.py AriClient._on_text (WebSocket frames)",
                          frames, run_ari_frame)

# ------------------------------------------------------------------ FastAGI (agi/protocol)

AGI_HEADER = ("agi_network: yes\nagi_network_script: callback-offer?queue=sales&x=1\n"
              "agi_request: agi://127.0.0.1:4573/callback-offer?queue=sales\n"
              "agi_channel: PJSIP/caller-00000001\nagi_callerid: +12025550123\n"
              "agi_uniqueid: 1764080000.1\nagi_arg_1: a\nagi_arg_2: b c\n\n")
headers = st.one_of(st.just(AGI_HEADER), splice(st.just(AGI_HEADER), odd_text),
                    st.lists(st.tuples(st.one_of(st.from_regex(r"agi_[a-z0-9_]{1,12}",
                                                               fullmatch=True), odd_text),
                                       odd_text).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                             max_size=6).map(lambda ls: "\n".join(ls) + "\n\n"),
                    st.text(max_size=60))
agi_headers = st.one_of(headers.map(lambda t: t.encode("utf-8", "surrogatepass")),
                        st.binary(max_size=60),
                        st.integers(1, 300).map(lambda n: AGI_HEADER.encode() * n))
REPLIES = ("200 result=1", "200 result=-1", "200 result=0 (timeout)", "200 result=1234 endpos=5",
           "200 result=52 (dtmf) endpos=23", "510 Invalid or unknown command", "HANGUP",
           "511 Command Not Permitted on a dead channel or intercept routine",
           "520 End of proper usage.", "200 result=*12# (v a l) endpos=1 x_y=")
replies = st.one_of(st.sampled_from(REPLIES), splice(st.sampled_from(REPLIES), odd_text), odd_text)
ROUTE = re.compile(r"[a-z][a-z0-9-]{0,39}")


def run_agi(case: tuple[bytes, str, list[str]]) -> None:
    header, reply, words = case
    try:
        request = parse_request(header)
    except AgiProtocolError as exc:
        assert str(exc)
    else:
        assert ROUTE.fullmatch(request.route) and isinstance(request.caller_number, str)
    try:
        response = parse_response(reply)
    except AgiProtocolError:
        pass
    else:
        assert 0 <= response.code <= 999 and response.ok in (True, False)
        assert response.digit is None or response.digit in ev.DTMF_DIGITS
    try:
        line = format_command(*words)
    except AgiProtocolError:
        return
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line, line


agi_target = Target(
    "agi", "agi/protocol.py parse_request, parse_response, format_command",
    st.tuples(agi_headers, replies, st.lists(odd_text, min_size=1, max_size=4)), run_agi)

# ------------------------------------------------------------------ AMI (panoramisk → ami/)

AMI_WIRE = ("Event: QueueMember\r\nQueue: sales\r\nMemberName: agent1\r\n"
            "Location: PJSIP/agent1\r\nStateInterface: PJSIP/agent1\r\nStatus: 1\r\n"
            "Paused: 0\r\n\r\n"
            "Event: DeviceStateChange\r\nDevice: PJSIP/agent1\r\nState: INUSE\r\n\r\n"
            "Event: QueueCallerAbandon\r\nQueue: sales\r\nCallerIDNum: +12025550123\r\n"
            "Uniqueid: 1764080000.1\r\nHoldTime: 12\r\n\r\n"
            "Response: Success\r\nActionID: a1\r\nMessage: Originate queued\r\n\r\n"
            "Event: OriginateResponse\r\nActionID: a1\r\nReason: 4\r\n\r\n"
            "Event: DialEnd\r\nUniqueid: cb-1\r\nDialStatus: ANSWER\r\n\r\n")
AMI_HEADERS = ("Event", "Response", "Queue", "Interface", "Location", "MemberName", "Name",
               "StateInterface", "Status", "Paused", "Device", "State", "DialStatus",
               "Uniqueid", "CallerIDNum", "HoldTime", "Reason", "Message", "ActionID",
               "ChanVariable")
AMI_VALUES = ("QueueMemberStatus", "QueueMemberAdded", "QueueMemberRemoved", "QueueMember",
              "DeviceStateChange", "OriginateResponse", "DialEnd", "sales", "PJSIP/agent1",
              "0", "1", "4", "NOT_INUSE", "ANSWER", "", "nan", "1e400")
ami_lines = st.tuples(st.one_of(st.sampled_from(AMI_HEADERS), odd_text),
                      st.one_of(st.sampled_from(AMI_VALUES), odd_text)).map(
    lambda kv: f"{kv[0]}: {kv[1]}")
ami_wire = st.one_of(
    st.just(AMI_WIRE), splice(st.just(AMI_WIRE), odd_text),
    st.lists(st.lists(ami_lines, min_size=1, max_size=6).map("\r\n".join), max_size=5)
    .map(lambda blocks: "\r\n\r\n".join(blocks) + "\r\n\r\n"),
    st.text(max_size=80))


def ami_messages(wire: str) -> list[Message]:
    """The messages panoramisk makes of ``wire`` (its AMIProtocol.data_received, minus I/O)."""
    blocks = wire.split("\r\n\r\n")[:-1]
    return [m for m in (Message.from_line(b.strip()) for b in blocks) if m is not None]


def run_ami(wire: str) -> None:
    board, seen = MemberBoard(), []
    for message in ami_messages(wire):
        event = plain_event(message)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.items())
        seen.append(event)
        changed = board.apply(event)
        assert changed is None or isinstance(changed, Member)
        outcome_of_dial_status(event.get("DialStatus", ""))
        assert ROUTE_SAFE.fullmatch(interaction_id(event.get("Uniqueid", "")))
    for queue in board.queues():
        assert all(isinstance(m, Member) for m in board.free(queue))
    outcome, detail = outcome_of_reply(seen)
    assert isinstance(outcome, DialOutcome) and isinstance(detail, str)


ROUTE_SAFE = re.compile(r"agi-[A-Za-z0-9._-]{1,100}")
ami_target = Target(
    "ami", "panoramisk Message.from_line → ami/link.py plain_event, core/members.py, "
    "ami/originate.py", ami_wire, run_ami)
