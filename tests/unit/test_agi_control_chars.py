"""FastAGI headers with control characters (agi/protocol.py): a value the caller controls
(the SIP display name becomes ``agi_calleridname``) is kept only scrubbed, a route parameter
or argument with one is refused with a typed error, and nothing raw reaches a request."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.agi.protocol import AgiProtocolError, UnknownRoute, parse_request
from acdkit.core.text import has_control

HEADER = (Path(__file__).parent / "fixtures" / "agi" / "request-callback-offer.txt").read_bytes()
CONTROLS = ["\r", "\x00", "\x1b[2J", "\x07", "\x7f", "\x85", "\x9b31m", "\u2028", "\u202e",
            "\u2066", "\ufeff", "\t"]


def with_line(name: str, value: str) -> bytes:
    """The recorded header with ``agi_<name>: value`` (replacing the line if there is one)."""
    lines = [line for line in HEADER.decode().split("\n")
             if line and not line.startswith(f"agi_{name}:")]
    return ("\n".join([*lines, f"agi_{name}: {value}"]) + "\n\n").encode()


def all_values(request: object) -> list[str]:
    env = request.env  # type: ignore[attr-defined]
    return [*env.values(), *request.params.values(), *request.args]  # type: ignore[attr-defined]


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("name", ["calleridname", "callerid", "channel", "uniqueid", "dnid",
                                  "rdnis", "accountcode"])
def test_a_header_value_with_a_control_character_is_kept_only_scrubbed(name: str,
                                                                       control: str) -> None:
    request = parse_request(with_line(name, f"Evil{control}Name"))
    value = request.env[name]
    assert value.startswith("Evil\ufffd") and value.endswith("Name")
    assert len(value) == len(f"Evil{control}Name")
    assert not any(has_control(v) for v in all_values(request))


def test_a_crlf_in_the_caller_name_cannot_forge_another_header_line() -> None:
    request = parse_request(with_line("calleridname", "Bob\rагент\rFAKE"))
    assert request.env["calleridname"] == "Bob\ufffdагент\ufffdFAKE"
    assert request.channel == "PJSIP/caller-00000000"


@pytest.mark.parametrize("control", CONTROLS)
def test_a_route_argument_with_a_control_character_is_refused(control: str) -> None:
    with pytest.raises(UnknownRoute, match="argument 1"):
        parse_request(with_line("arg_1", f"x{control}y"))


@pytest.mark.parametrize("control", ["%0D", "%00", "%1B", "%7F", "%C2%85", "%E2%80%AE",
                                     "%E2%80%A8"])
def test_a_route_parameter_with_a_control_character_is_refused(control: str) -> None:
    raw = HEADER.replace(b"queue=sales", f"queue=sa{control}les".encode())
    with pytest.raises(UnknownRoute):
        parse_request(raw)


HEADER_NAMES = st.sampled_from(["calleridname", "callerid", "channel", "dnid", "rdnis",
                                "accountcode", "language", "x", "arg_1", "arg_2"])
NASTY = st.text(alphabet=st.sampled_from([*"".join(CONTROLS), "a", " ", "é", "<", ":"]),
                max_size=20) | st.text(max_size=20)


@given(st.lists(st.tuples(HEADER_NAMES, NASTY), max_size=6))
def test_any_header_values_give_a_clean_request_or_a_protocol_error(
        lines: list[tuple[str, str]]) -> None:
    raw = HEADER
    for name, value in lines:
        raw = with_line(name, value.replace("\n", ""))
    try:
        request = parse_request(raw)
    except AgiProtocolError:
        return
    assert not any(has_control(v) for v in all_values(request))


@given(st.binary(max_size=600))
def test_any_bytes_after_a_valid_start_give_a_clean_request_or_a_protocol_error(
        tail: bytes) -> None:
    try:
        request = parse_request(HEADER[:-1] + tail.replace(b"\n\n", b"\n") + b"\n\n")
    except AgiProtocolError:
        return
    assert not any(has_control(v) for v in all_values(request))
