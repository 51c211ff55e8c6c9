"""The formula of every KPI, by name, as `acdkit stats` and /metrics print it
(docs/kpis.md), and the two service level formulas ``[kpis] sl_formula`` chooses from."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class SlFormula(StrEnum):
    APP_QUEUE = "app_queue"  # answered within T / (answered + abandoned)
    OFFERED_MINUS_SHORT = "offered_minus_short"  # answered within T / (offered - short)


SL_TEXT = {
    SlFormula.APP_QUEUE: "answered_within / (answered + abandoned)",
    SlFormula.OFFERED_MINUS_SHORT: "answered_within / (offered - short_abandoned)",
}

FORMULAS: Mapping[str, str] = {
    "offered": "calls that entered the queue in the window",
    "answered": "calls an agent answered in the window",
    "answered_within": "answered calls with wait <= T (threshold_s)",
    "abandoned": "calls whose caller hung up while queued or ringing, in the window",
    "short_abandoned": "abandoned calls with wait < short_abandon_s (also in abandoned)",
    "overflow_callback": "calls that left the queue for a callback",
    "overflow_voice_request": "calls that left the queue for a voice request",
    "timed_out": "calls that waited queue.max_wait and went to the fallback",
    "asa": "mean(wait of answered calls), wait = answer time - enqueue time",
    "asa_p90": "p90 (nearest rank) of the wait of answered calls",
    "aht": "mean(talk + wrap_up) of calls completed in the window",
    "abandon_rate": "abandoned / offered",
    "longest_wait": "now - enqueue time of the oldest call still waiting",
    "callbacks_booked": "callbacks created in the window",
    "callbacks_completed": "callbacks that ended in a conversation, in the window",
    "callbacks_failed": "callbacks that failed after their attempts, in the window",
    "callbacks_expired": "callbacks past their deadline, in the window",
    "callbacks_first_attempt_rate": "completed with attempts <= 1 / completed",
    "callbacks_booking_to_connect_p50": "p50 (nearest rank) of (answer time - booking time)",
    "callbacks_booking_to_connect_p90": "p90 (nearest rank) of (answer time - booking time)",
    "requests_recorded": "voice requests recorded in the window",
    "requests_open": "voice requests not yet answered, now",
    "requests_delivered": "answers delivered in the window",
    "requests_time_to_delivery_p50": "p50 (nearest rank) of (delivery time - recording time)",
    "outbound_dialed": "customer dial attempts (answered or not) in the window",
    "outbound_reached": "customer dial attempts answered in the window",
    "occupancy": "(on_call + wrap_up) / (ready + reserved + on_call + wrap_up)",
}
