"""The agent state machine, reaches and PINs (core/agents.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit.core.agents import (
    Agent,
    AgentEvent,
    AgentMode,
    AgentState,
    check_pin,
    hash_pin,
    set_mode,
    transition,
    validate_reach,
)
from acdkit.core.errors import InvalidInput, InvalidTransition
from acdkit.core.numbers import FORBIDDEN_IN_DIAL

A, V = AgentState, AgentEvent
MODEL: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (A.LOGGED_OUT, V.LOGIN): A.READY,
    **{(s, V.LOGOUT): A.LOGGED_OUT for s in AgentState if s is not A.LOGGED_OUT},
    **{(s, V.PAUSE): A.PAUSED for s in (A.READY, A.WRAP_UP, A.PAUSED)},
    (A.PAUSED, V.RESUME): A.READY,
    (A.READY, V.RESERVE): A.RESERVED,
    (A.RESERVED, V.ANSWER): A.ON_CALL,
    (A.RESERVED, V.NO_ANSWER): A.WRAP_UP,  # or PAUSED after max_misses
    (A.RESERVED, V.END): A.WRAP_UP,
    (A.ON_CALL, V.END): A.WRAP_UP,
    (A.WRAP_UP, V.WRAPPED): A.READY,
}
HOLDING = {A.RESERVED, A.ON_CALL}

steps = st.lists(
    st.tuples(
        st.sampled_from(list(AgentEvent)),
        st.sampled_from([None, "", "t1", "t2"]),  # task id
        st.sampled_from([None, "", "PJSIP/agent1", "+15551234567"]),  # reach
        st.floats(0, 600),
    ),
    max_size=50,
)


@given(steps, st.integers(1, 4))
def test_random_event_sequences_keep_the_invariants(seq: list, max_misses: int) -> None:
    agent = Agent(id="a1")
    now = 0.0
    for event, task_id, reach, dt in seq:
        now += dt
        expected = MODEL.get((agent.state, event))
        missing = (event is V.RESERVE and not task_id) or (event is V.LOGIN and not reach)
        if expected is None or missing:
            with pytest.raises(InvalidTransition):
                transition(agent, event, now, task_id=task_id, reach=reach, max_misses=max_misses)
            continue
        new = transition(agent, event, now, task_id=task_id, reach=reach, max_misses=max_misses)
        if event is V.NO_ANSWER and agent.misses + 1 >= max_misses:
            expected = A.PAUSED
        assert new.state is expected
        assert new.state_since == now
        # an agent holds a task exactly while reserved or on a call
        assert (new.task_id is not None) == (new.state in HOLDING)
        if new.state in HOLDING and agent.state in HOLDING:
            assert new.task_id == agent.task_id
        if event in (V.ANSWER, V.RESUME, V.LOGIN):
            assert new.misses == 0
        if event is V.NO_ANSWER:
            assert new.misses == agent.misses + 1
        agent = new


def test_missing_too_often_pauses_the_agent() -> None:
    agent = transition(Agent(id="a1"), V.LOGIN, 0, reach="PJSIP/agent1")
    for n in range(1, 4):
        agent = transition(agent, V.RESERVE, n, task_id=f"t{n}")
        agent = transition(agent, V.NO_ANSWER, n, max_misses=3)
        if n < 3:
            agent = transition(agent, V.WRAPPED, n)
    assert (agent.state, agent.pause_reason, agent.misses) == (A.PAUSED, "missed", 3)
    resumed = transition(agent, V.RESUME, 9)
    assert (resumed.state, resumed.misses, resumed.pause_reason) == (A.READY, 0, "")


def test_login_sets_reach_and_mode() -> None:
    agent = transition(Agent(id="a1"), V.LOGIN, 5, reach="+15551234567", mode=AgentMode.PERSISTENT)
    assert (agent.state, agent.reach, agent.mode) == (A.READY, "+15551234567", AgentMode.PERSISTENT)
    assert set_mode(agent, AgentMode.PER_CALL).mode is AgentMode.PER_CALL


@pytest.mark.parametrize("reach", ["PJSIP/agent1", "PJSIP/agent_1.x-y", "+15551234567",
                                   "+442071234567"])
def test_valid_reaches(reach: str) -> None:
    assert validate_reach(reach) == reach


@pytest.mark.parametrize("reach", [
    "", "agent1", "SIP/agent1", "Local/100@default", "PJSIP/agent1&PJSIP/agent2",
    "PJSIP/agent1,30", "PJSIP/agent1/sip:x@evil", "PJSIP/a@b", "PJSIP/a^b", "PJSIP/a b",
    "PJSIP/agent1\n", "+15551234567\n", "+1555 1234567", "15551234567", "+0123456789",
    "+1234", "+1555123456789012", "PJSIP/" + "a" * 41,
])
def test_invalid_reaches(reach: str) -> None:
    with pytest.raises(InvalidInput):
        validate_reach(reach)


@given(st.text(max_size=60))
def test_an_accepted_reach_has_no_dial_string_metacharacters(reach: str) -> None:
    try:
        validate_reach(reach)
    except InvalidInput:
        return
    assert not set(reach) & FORBIDDEN_IN_DIAL


def test_login_with_a_bad_reach_is_refused() -> None:
    with pytest.raises(InvalidInput):
        transition(Agent(id="a1"), V.LOGIN, 0, reach="PJSIP/a&Local/x")


@settings(max_examples=8, deadline=None)  # PBKDF2 at 100k rounds is slow on purpose
@given(st.from_regex(r"[0-9]{4,12}", fullmatch=True), st.binary(min_size=8, max_size=16),
       st.from_regex(r"[0-9]{4,12}", fullmatch=True))
def test_pin_round_trip_and_rejection(pin: str, salt: bytes, other: str) -> None:
    stored = hash_pin(pin, salt)
    assert check_pin(pin, stored)
    assert check_pin(other, stored) == (other == pin)
    assert pin not in stored.split("$")[-1]


def test_same_pin_different_salt_different_hash() -> None:
    assert hash_pin("1234", b"salt-one") != hash_pin("1234", b"salt-two")


@pytest.mark.parametrize("pin", ["", "123", "1234567890123", "12a4", "1234\n", " 1234",
                                 "١٢٣٤"])
def test_bad_pins_are_not_hashed(pin: str) -> None:
    with pytest.raises(InvalidInput):
        hash_pin(pin, b"salt")


@pytest.mark.parametrize("stored", [
    "", "nonsense", "pbkdf2$100000$zz$00", "pbkdf2$x$00$00", "pbkdf2$0$00$00",
    "pbkdf2$-5$00$00", "pbkdf2$1$00$éé", "pbkdf2$1$00$not-hex", "a$b$c", "a$b$c$d$e",
])
def test_a_broken_hash_never_matches_and_never_raises(stored: str) -> None:
    assert check_pin("1234", stored) is False


@given(st.text(alphabet=st.characters(exclude_characters="$"), max_size=30),
       st.text(max_size=12))
def test_check_pin_never_raises_on_junk(junk: str, pin: str) -> None:
    assert check_pin(pin, f"pbkdf2$1${junk}${junk}") in (True, False)


def test_a_tampered_hash_is_refused() -> None:
    stored = hash_pin("4321", b"0123456789abcdef")
    last = stored[-1]
    tampered = stored[:-1] + ("0" if last != "0" else "1")
    assert not check_pin("4321", tampered)
