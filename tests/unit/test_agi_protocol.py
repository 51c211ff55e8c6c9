"""The FastAGI wire format (agi/protocol.py) from a header and replies recorded on the lab's
Asterisk 22.10.1 (tests/unit/fixtures/agi/), plus what must be refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.agi import protocol
from acdkit.agi.protocol import (
    AgiProtocolError,
    BadCommand,
    BadHeader,
    BadResponse,
    HeaderTooLarge,
    UnknownRoute,
    format_command,
    parse_request,
    parse_response,
)
from acdkit.core.errors import InvalidInput

FIXTURES = Path(__file__).parent / "fixtures" / "agi"
HEADER = (FIXTURES / "request-callback-offer.txt").read_bytes()


def test_the_recorded_header_names_the_route_its_queue_and_the_caller() -> None:
    request = parse_request(HEADER)
    assert request.route == "callback-offer"
    assert dict(request.params) == {"queue": "sales"}
    assert request.caller_number == "2125550142"
    assert request.channel == "PJSIP/caller-00000000"
    assert request.unique_id == "1795626532.0"
    assert request.env["context"] == "acdkit-callers" and request.args == ()
    assert protocol.route_function_name(request.route) == "callback_offer"


def test_an_unknown_caller_id_is_empty_and_args_are_kept_in_order() -> None:
    raw = HEADER.replace(b"agi_callerid: 2125550142", b"agi_callerid: unknown") \
        .replace(b"\n\n", b"\nagi_arg_2: b\nagi_arg_1: a\n\n")
    request = parse_request(raw)
    assert request.caller_number == ""
    assert request.args == ("a", "b")


def test_the_route_comes_from_agi_request_when_network_script_is_missing() -> None:
    raw = b"".join(line + b"\n" for line in HEADER.split(b"\n")
                   if line and not line.startswith(b"agi_network_script")) + b"\n"
    assert parse_request(raw).route == "callback-offer"


@pytest.mark.parametrize(("raw", "error"), [
    (b"\xff\xfe\n\n", BadHeader),
    (b"hello world\n\n", BadHeader),
    (b"agi_channel: PJSIP/x\n\n", BadHeader),  # no script
    (b"agi_network_script: ../etc\n\n", UnknownRoute),
    (b"agi_network_script: Callback\n\n", UnknownRoute),
    (b"agi_network_script: survey?queue=a&queue=b\n\n", UnknownRoute),
    (b"agi_network_script: survey?q%00=1\n\n", UnknownRoute),
    (b"agi_network_script: survey?queue=%0Aevil\n\n", UnknownRoute),
    (b"agi_network_script: survey\n" + b"agi_x: y\n" * 200 + b"\n", HeaderTooLarge),
    (b"agi_network_script: survey\nagi_x: " + b"y" * 20_000 + b"\n\n", HeaderTooLarge),
])
def test_a_bad_header_is_a_typed_error(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(raw)
    assert issubclass(error, AgiProtocolError) and issubclass(error, InvalidInput)


@pytest.mark.parametrize(("line", "code", "result", "data", "digit"), [
    ("200 result=1 (1795626532)", 200, 1, "1795626532", None),  # GET VARIABLE, set
    ("200 result=0", 200, 0, None, None),  # GET VARIABLE, not set
    ("200 result=49 endpos=12345", 200, 49, None, "1"),  # STREAM FILE stopped by 1
    ("200 result=0 endpos=96000", 200, 0, None, None),  # played to the end
    ("200 result=35", 200, 35, None, "#"),
    ("200 result=-1", 200, -1, None, None),  # hang-up during a command
    ("200 result=1 (a value (with) parentheses)", 200, 1, "a value (with) parentheses", None),
    ("510 Invalid or unknown command", 510, -1, None, None),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511, -1, None, None),
    ("520 End of proper usage.", 520, -1, None, None),
])
def test_replies(line: str, code: int, result: int, data: str | None, digit: str | None) -> None:
    reply = parse_response(line + "\n")
    assert (reply.code, reply.result, reply.data, reply.digit) == (code, result, data, digit)
    assert reply.ok is (code == 200 and result != -1)


def test_get_data_keeps_leading_zeros_and_says_timeout() -> None:
    keyed = parse_response("200 result=0123 (timeout)")
    assert (keyed.raw_result, keyed.data) == ("0123", "timeout")
    nothing = parse_response("200 result= (timeout)")
    assert (nothing.raw_result, nothing.data, nothing.ok) == ("", "timeout", True)
    assert parse_response("200 result=4*1").raw_result == "4*1"


@pytest.mark.parametrize("line", ["", "HANGUP", "200", "200 result=x", "abc 200", "20 ok",
                                  "\u0662\u0660\u0660 result=1"])  # Arabic-Indic 200
def test_a_line_that_is_no_reply_is_refused(line: str) -> None:
    with pytest.raises(BadResponse):
        parse_response(line)


def test_multi_line_520_is_recognised() -> None:
    assert protocol.is_continuation("520-Invalid command syntax.  Proper usage follows:")
    assert protocol.is_final_520("520 End of proper usage.")
    assert not protocol.is_continuation("520 End of proper usage.")


def test_commands_quote_what_needs_it_and_refuse_what_cannot_be_sent() -> None:
    assert format_command("STREAM FILE", "acdkit/overflow-offer", "0123456789*#") == \
        b"STREAM FILE acdkit/overflow-offer 0123456789*#\n"
    assert format_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert format_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE X "a b"\n'
    assert format_command("GET DATA", "p", 6000, 20) == b"GET DATA p 6000 20\n"
    for bad in ("a\nHANGUP", 'x"y', "back\\slash", "nul\0"):
        with pytest.raises(BadCommand):
            format_command("SET VARIABLE", "X", bad)
    for name in ("get variable", "EXEC\nX", "", "A B C D E"):
        with pytest.raises(BadCommand):
            format_command(name)


@given(st.binary(max_size=2_000))
def test_any_bytes_parse_or_raise_a_protocol_error(raw: bytes) -> None:
    try:
        request = parse_request(raw)
    except AgiProtocolError:
        return
    assert protocol.route_function_name(request.route).isidentifier()


@given(st.text(max_size=300))
def test_any_line_parses_or_raises_bad_response(line: str) -> None:
    try:
        reply = parse_response(line)
    except BadResponse:
        return
    assert 100 <= reply.code <= 999
