"""The holder's timing rule (core/lease.py): it stops before the lease could end in Redis,
renews in time, retries soon after a failure, and never plans a renew past its deadline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.core.errors import ConfigError
from acdkit.core.lease import (
    LeaseTerms,
    check_node_id,
    deadline,
    may_act,
    next_renew,
    node_id_from_host,
)

TERMS = LeaseTerms(ttl=5.0, margin=1.5, poll=1.0)


def test_the_defaults_renew_every_third_of_the_ttl_and_stop_a_margin_early() -> None:
    assert TERMS.renew_every == pytest.approx(5 / 3)
    assert TERMS.ttl_ms == 5000
    assert deadline(TERMS, 100.0) == 103.5
    assert may_act(TERMS, 100.0, 103.49)
    assert not may_act(TERMS, 100.0, 103.5)  # the deadline itself is too late


def test_a_renew_is_planned_a_third_of_the_ttl_after_the_last_one() -> None:
    assert next_renew(TERMS, 100.0, 100.2, failed=False) == pytest.approx(100 + 5 / 3)


def test_after_a_failed_renew_the_next_try_comes_soon_but_not_at_once() -> None:
    at = next_renew(TERMS, 100.0, 101.7, failed=True)
    assert 101.7 < at < 101.7 + TERMS.renew_every


def test_a_retry_is_never_planned_past_the_deadline() -> None:
    assert next_renew(TERMS, 100.0, 103.4, failed=True) == 103.5


@given(ttl=st.floats(0.3, 600), margin_share=st.floats(0.01, 0.5),
       renewed_at=st.floats(0, 1e6), elapsed=st.floats(0, 1e3), failed=st.booleans())
def test_the_holder_never_acts_once_redis_may_have_let_the_lease_go(
        ttl: float, margin_share: float, renewed_at: float, elapsed: float,
        failed: bool) -> None:
    terms = LeaseTerms(ttl, ttl * margin_share, min(1.0, ttl))
    now = renewed_at + elapsed
    # Redis expires the key no earlier than ttl after the renew was sent.
    if may_act(terms, renewed_at, now):
        assert now < renewed_at + ttl - terms.margin
    planned = next_renew(terms, renewed_at, now, failed)
    assert planned <= deadline(terms, renewed_at)
    if not failed:
        assert planned <= renewed_at + terms.renew_every


@pytest.mark.parametrize(("ttl", "margin", "poll", "key"), [
    (0.1, 0.05, 0.1, "node.lease_ttl"),
    (5.0, 0.0, 1.0, "node.lease_margin"),
    (5.0, 2.6, 1.0, "node.lease_margin"),  # no time left to renew
    (5.0, 1.0, 6.0, "node.standby_poll"),
])
def test_terms_that_cannot_work_are_refused_naming_the_key(ttl: float, margin: float,
                                                           poll: float, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LeaseTerms(ttl, margin, poll)
    assert caught.value.key == key


@pytest.mark.parametrize(("host", "node"), [
    ("pbx-a.example.com", "pbx-a"), ("PBX_2", "PBX_2"), ("a b+c", "a-b-c"), ("", "node"),
    ("x" * 40, "x" * 32),
])
def test_a_node_id_from_a_host_name(host: str, node: str) -> None:
    assert node_id_from_host(host) == node
    assert check_node_id(node) == node


@pytest.mark.parametrize("bad", ["", "a:b", "a.b", "x" * 33, "é"])
def test_a_node_id_that_cannot_name_a_key_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"node\.id"):
        check_node_id(bad)
